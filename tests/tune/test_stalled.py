"""A trial whose run no client update reached (every client dropped out or missed the
deadline) trained nothing: it is pruned with the engine's reason, not ranked."""

from __future__ import annotations

from optuna.trial import TrialState

from fedhpo.store import records as rec
from fedhpo.tune import tune
from tests.helpers import BASE, LR_MU


def test_a_trial_no_update_reached_is_pruned_with_the_reason(make_space, storage) -> None:
    # it completed with the untrained model's validation accuracy as its value
    space = make_space(LR_MU, fidelity="{}")
    base = space.parent / "base.yaml"
    base.write_text(
        BASE.replace(
            "federation: {rounds: 12, clients_per_round: 4, eval_every: 1}",
            "federation: {rounds: 12, clients_per_round: 4, eval_every: 1, deadline: 1.0e-9}",
        )
    )
    study = tune(space, storage=storage, study="stalled", trials=2, log=lambda _: None)
    trials = study.get_trials()
    assert trials and all(t.state == TrialState.PRUNED for t in trials)
    for t in trials:
        assert "no client update was used" in t.user_attrs[rec.STATUS_REASON]
        assert "federation.deadline" in t.user_attrs[rec.STATUS_REASON]
