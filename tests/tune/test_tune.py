"""fedhpo.tune end to end on tiny studies: records, pruning, divergence, failures, resume,
parallel jobs, multi-objective, promotion and the best-config round trip."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fedhpo.config import load_config
from fedhpo.errors import StudyError
from fedhpo.sim.engine import run_simulation
from fedhpo.sim.models import register_model
from fedhpo.space import load_space
from fedhpo.store import best_config, best_trial, export_best, leaderboard, other_trials
from fedhpo.store import records as rec
from fedhpo.tune import cached_dataset, run_steps, tune
from tests.helpers import LR_MU, climbing_run


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def test_trials_carry_config_fidelity_curves_and_reason(make_space, storage) -> None:
    study = tune(make_space(LR_MU), storage=storage, study="s", log=lambda _: None)
    assert len(study.trials) == 4
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        config = t.user_attrs[rec.CONFIG]
        assert config["client"]["lr"] == pytest.approx(t.params["client.lr"])
        assert config["federation"]["rounds"] == 6  # the fidelity, not the base's 12
        assert t.user_attrs[rec.FIDELITY]["rounds"] == 6
        assert t.user_attrs[rec.CURVES]["round"] == [1, 2, 3, 4, 5, 6]
        assert t.user_attrs[rec.STATUS_REASON] == "ran all 6 rounds"
        assert t.user_attrs[rec.BYTES_SENT] > 0
        assert t.user_attrs[rec.WALL_SECONDS] > 0
        # intermediate values are the per-round validation metric, step = round
        assert sorted(t.intermediate_values) == [1, 2, 3, 4, 5, 6]
        assert t.value == pytest.approx(t.user_attrs[rec.CURVES]["val_accuracy"][-1])
    assert study.user_attrs[rec.BASE_CONFIG]["federation"]["rounds"] == 12
    assert study.user_attrs[rec.SPACE]["params"][0]["name"] == "client.lr"
    assert "client.mu" in study.user_attrs[rec.SPACE_TEXT]
    assert study.user_attrs[rec.VERSION]


def test_plain_optuna_opens_the_study(make_space, storage) -> None:
    tune(make_space(LR_MU), storage=storage, study="plain", trials=2, log=lambda _: None)
    study = optuna.load_study(study_name="plain", storage=storage)
    assert len(study.trials) == 2 and study.best_trial.params.keys() == {"client.lr", "client.mu"}


def test_same_seed_same_trials(make_space, tmp_path: Path) -> None:
    space = make_space(LR_MU)
    a = tune(space, storage=f"sqlite:///{tmp_path / 'a.db'}", study="x", log=lambda _: None)
    b = tune(space, storage=f"sqlite:///{tmp_path / 'b.db'}", study="x", log=lambda _: None)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]  # bit for bit


def test_pruning_stops_bad_trials_early(make_space, storage) -> None:
    space = make_space(
        LR_MU,
        tuner="{sampler: random, pruner: median, trials: 14, seed: 3, promote: 0}",
        fidelity="{rounds: 12}",
    )
    study = tune(space, storage=storage, study="p", log=lambda _: None)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, states(study)
    for t in pruned:
        assert len(t.user_attrs[rec.CURVES]["round"]) < 12
        assert t.user_attrs[rec.STATUS_REASON].startswith("pruned at round")
    board, others = leaderboard(study), other_trials(study)
    assert set(board["state"]) == {"complete"}
    assert set(others["state"]) == {"pruned"}


def test_diverging_trial_is_pruned_with_reason(make_space, storage) -> None:
    space = make_space(
        "  server.lr: {type: float, low: 1.0e+37, high: 3.0e+38, log: true}\n"
        "  server.optimizer: {type: categorical, choices: [adam]}\n",
        tuner="{sampler: random, pruner: none, trials: 2, seed: 0, promote: 0}",
    )
    study = tune(space, storage=storage, study="d", log=lambda _: None)
    assert states(study) == {"PRUNED": 2}
    assert all(t.user_attrs[rec.STATUS_REASON].startswith("diverged") for t in study.trials)


def test_a_trial_diverging_in_its_first_round_counts_that_round_as_compute(
    make_space, storage
) -> None:
    space = make_space(
        "  client.lr: {type: categorical, choices: [1.0e+6]}\n"
        "  server.lr: {type: float, low: 1.0e+29, high: 1.0e+30, log: true}\n",
        tuner="{sampler: random, pruner: none, trials: 2, seed: 0, promote: 0}",
    )
    study = tune(space, storage=storage, study="d1", log=lambda _: None)
    assert states(study) == {"PRUNED": 2}
    assert all("in round 1" in t.user_attrs[rec.STATUS_REASON] for t in study.trials)
    assert all(rec.trial_steps(t) > 0 for t in study.trials)  # they trained, then diverged
    assert study.user_attrs[rec.COMPUTE]["trial_steps"] == sum(map(rec.trial_steps, study.trials))


@register_model("test_fragile")
def _fragile(input_shape, num_classes, *, explode: bool = False):
    from torch import nn

    class Fragile(nn.Sequential):
        def forward(self, x):
            if explode and self.training:  # builds, and passes the checks in eval mode
                raise RuntimeError("boom on purpose")
            return super().forward(x)

    return Fragile(nn.Flatten(), nn.Linear(input_shape[0], num_classes))


@pytest.mark.filterwarnings("ignore:.*reference loop")
def test_failing_trial_is_recorded_and_study_goes_on(make_space, storage, tmp_path) -> None:
    space = make_space(
        "  model.options.explode: {type: categorical, choices: [true, false]}\n",
        tuner="{sampler: grid, pruner: none, seed: 0, promote: 0}",
    )
    text = space.read_text().replace("base: base.yaml", "base: frag.yaml")
    (tmp_path / "frag.yaml").write_text(
        (tmp_path / "base.yaml").read_text().replace("{name: logreg}", "{name: test_fragile}")
    )
    space.write_text(text)
    study = tune(space, storage=storage, study="f", log=lambda _: None)
    assert states(study) == {"FAIL": 1, "COMPLETE": 1}
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    assert "boom on purpose" in failed.user_attrs[rec.STATUS_REASON]


def test_resume_adds_trials_to_the_same_study(make_space, storage) -> None:
    space = make_space(LR_MU)
    tune(space, storage=storage, trials=3, log=lambda _: None)
    study = tune(space, storage=storage, trials=2, log=lambda _: None)
    assert study.study_name == "space"
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    params = [tuple(t.params.values()) for t in study.trials]
    assert len(set(params)) == 5  # the resumed sampler does not replay the first trials


def test_resume_with_another_space_is_refused(make_space, storage) -> None:
    from fedhpo.errors import StudyError

    tune(make_space(LR_MU), storage=storage, study="r", trials=1, log=lambda _: None)
    other = make_space("  client.lr: {type: float, low: 0.01, high: 0.1}\n", name="other")
    with pytest.raises(StudyError, match="different search space"):
        tune(other, storage=storage, study="r", trials=1, log=lambda _: None)


def test_a_study_fedhpo_did_not_make_is_refused_untouched(make_space, storage) -> None:
    # fedhpo tune added its trials to a plain Optuna study of the same name, and the
    # leaderboard then ranked the foreign trials with them
    from fedhpo.errors import StudyError

    other = optuna.create_study(study_name="f", storage=storage, direction="maximize")
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(StudyError, match="'f' was not made by fedhpo"):
        tune(make_space(LR_MU), storage=storage, study="f", trials=1, log=lambda _: None)
    again = optuna.load_study(study_name="f", storage=storage)
    assert len(again.trials) == 2 and again.user_attrs == {}


def test_two_jobs_on_sqlite_record_every_trial_once(make_space, storage) -> None:
    space = make_space(
        LR_MU, tuner="{sampler: tpe, pruner: hyperband, trials: 8, seed: 0, promote: 0}"
    )
    study = tune(space, storage=storage, study="j", jobs=2, log=lambda _: None)
    assert [t.number for t in study.trials] == list(range(8))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert len({t._trial_id for t in study.trials}) == 8
    assert len({tuple(t.params.values()) for t in study.trials}) == 8


def test_multi_objective_leaderboard_ranks_by_pareto_front(make_space, storage) -> None:
    space = make_space(
        LR_MU + "  federation.clients_per_round: {type: int, low: 1, high: 8}\n",
        objective="[{metric: val_accuracy, direction: maximize}, {metric: bytes_sent}]",
        tuner="{sampler: random, trials: 6, seed: 1, promote: 0}",
    )
    study = tune(space, storage=storage, study="mo", log=lambda _: None)
    assert len(study.directions) == 2
    assert not [t for t in study.trials if t.state == TrialState.PRUNED]
    board = leaderboard(study)
    front = board[board["front"] == 1]
    assert sorted(front["trial"]) == sorted(t.number for t in study.best_trials)
    assert sorted(board["trial"]) == [t.number for t in study.trials]  # the dominated too
    assert {"val_accuracy", "bytes_sent"} <= set(board.columns)


def test_best_then_run_round_trip(make_space, storage, tmp_path) -> None:
    space_path = make_space(LR_MU, tuner="{sampler: random, pruner: none, trials: 4, promote: 2}")
    study = tune(space_path, storage=storage, study="b", log=lambda _: None)
    out = tmp_path / "best.yaml"
    exported = export_best(study, out)
    loaded = load_config(out)
    assert loaded == exported == best_config(study)
    # the leaderboard's winner: the promoted mean when promotion ran (it does by default)
    assert rec.promotions(study)
    assert loaded.client.lr == pytest.approx(best_trial(study).params["client.lr"])
    assert loaded.federation.rounds == 12  # full fidelity: the base's rounds
    result = run_simulation(loaded)
    assert result.status == "completed" and len(result.rounds) == 12


def test_promotion_ranks_by_full_fidelity_mean(make_space, storage) -> None:
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: none, trials: 5, seed: 0, promote: 0}"
    )
    before = leaderboard(tune(space, storage=storage, study="pr", log=lambda _: None))
    low_fi_top2 = {int(n) for n in before["trial"].head(2)}
    study = tune(
        space, storage=storage, study="pr", trials=0, promote_top=2, seeds=2, log=lambda _: None
    )
    promoted = rec.promotions(study)
    # the top 2 at low fidelity, plus trial 0 (the base config) for comparison
    assert set(promoted) == low_fi_top2 | {0}
    for entry in promoted.values():
        assert entry["seeds"] == [0, 1] and len(entry["values"]) == 2
        assert entry["mean"] == pytest.approx(sum(entry["values"]) / 2)
    board = leaderboard(study)
    head = board.head(len(promoted))
    assert set(head["trial"]) == set(promoted)
    assert list(head["promoted_mean"]) == sorted(head["promoted_mean"], reverse=True)
    assert board["promoted_mean"].iloc[len(promoted) :].isna().all()
    # the exported best is the promoted winner
    assert best_config(study).client.lr == pytest.approx(
        study.trials[int(head["trial"].iloc[0])].params["client.lr"]
    )


def test_promotion_stays_within_the_budget_counting_each_config_in_its_own_steps(
    make_space, storage
) -> None:
    # local epochs 2-4: every re-run costs 2-4 runs of the base config (1 epoch), which is
    # outside the space, so there is no base-config trial to re-run
    space = make_space(
        "  client.local_epochs: {type: int, low: 2, high: 4}\n",
        tuner="{sampler: random, pruner: none, seed: 0, promote: 0}",
        fidelity="{}",
    )
    study = tune(space, storage=storage, study="cost", trials=3, log=lambda _: None)
    full = study.user_attrs[rec.COMPUTE]["full_run_steps"]
    top = best_trial(study)
    epochs = top.params["client.local_epochs"]
    assert epochs >= 2
    lines: list[str] = []
    # the top config's second seed costs about `epochs` base runs: a budget just short of it
    # promotes nothing and says why
    short = tune(
        space, storage=storage, study="cost", trials=0, budget=epochs - 0.5,
        promote_top=1, seeds=2, log=lines.append,
    )  # fmt: skip
    assert rec.promotions(short) == {}
    assert any(f"trial {top.number} not re-run" in line for line in lines)
    assert short.user_attrs[rec.COMPUTE]["promotion_steps"] == 0
    enough = tune(
        space, storage=storage, study="cost", trials=0, budget=epochs + 1.0,
        promote_top=1, seeds=2, log=lambda _: None,
    )  # fmt: skip
    assert set(rec.promotions(enough)) == {top.number}
    compute = enough.user_attrs[rec.COMPUTE]
    assert 0 < compute["promotion_steps"] <= (epochs + 1.0) * full


def test_promotion_compares_with_the_base_config_that_the_search_stopped(
    make_space, storage
) -> None:
    # the default schedule (successive halving over all 12 rounds) by budget: trial 0, the
    # base config, is one of the first rung's sample and stops there
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: successive_halving, seed: 0}", fidelity="{}"
    )
    study = tune(
        space, storage=storage, study="sample", budget=6.0, promote_top=1, seeds=2,
        log=lambda _: None,
    )  # fmt: skip
    assert study.trials[0].user_attrs[rec.ORIGIN] == "base config"
    assert study.trials[0].state == TrialState.PRUNED
    # each pruned trial says why: the sample, or the trials that were better at its rung
    reasons = [t.user_attrs[rec.STATUS_REASON] for t in study.trials[:4]]
    assert reasons == [
        f"pruned at round 1: one of the first rung's sample ({n} of 4 other trials had "
        "reported there)"
        for n in range(4)
    ]
    judged = [
        t.user_attrs[rec.STATUS_REASON]
        for t in study.trials[4:]
        if t.state == TrialState.PRUNED and t.number not in rec.promotions(study)
    ]
    # ... or, for the trial running when the budget ran out, the budget
    better = [r for r in judged if "other trials were better there" in r]
    assert better and all(r in better or "the search's budget is spent" in r for r in judged)
    promoted = rec.promotions(study)
    assert 0 in promoted and len(promoted[0]["values"]) == 2  # both seeds re-run
    # ... both as full runs: the base config's own run, stopped at round 1, is not seed 0's
    # full run (it was taken for one, and its round-1 score averaged into the promoted mean)
    from fedhpo.tune import full_config
    from fedhpo.tune._budget import run_steps
    from fedhpo.tune._objective import cached_dataset

    base = load_space(space).base
    runs = [full_config(base, study.trials[0].params, s) for s in (0, 1)]
    assert promoted[0]["steps"] == sum(run_steps(c, cached_dataset(base.data)) for c in runs)
    board = leaderboard(study).set_index("trial")
    assert board.loc[0, "promoted_mean"] == pytest.approx(promoted[0]["mean"])
    assert board.loc[0, "state"] == "pruned"


def test_space_mistakes_create_nothing(make_space, tmp_path) -> None:
    from fedhpo.errors import SearchSpaceError

    bad = make_space("  client.lr: {type: float, low: 1.0, high: 0.1}\n")
    db = tmp_path / "never.db"
    with pytest.raises(SearchSpaceError):
        tune(bad, storage=f"sqlite:///{db}", log=lambda _: None)
    assert not db.exists()


def test_validation_objective_needs_validation_rows(make_space, storage, tmp_path) -> None:
    from fedhpo.errors import SearchSpaceError

    space = load_space(make_space(LR_MU))
    space = space.__class__(
        **{**space.__dict__, "base": space.base.with_values({"data.val_fraction": 0.0})}
    )
    with pytest.raises(SearchSpaceError, match="val_fraction"):
        tune(space, storage=storage, log=lambda _: None)
    assert math.isfinite(1.0)


def test_trial_zero_is_the_base_config(make_space, storage) -> None:
    study = tune(make_space(LR_MU), storage=storage, study="base", trials=2, log=lambda _: None)
    first = study.trials[0]
    assert first.user_attrs[rec.ORIGIN] == "base config"
    assert first.params == {"client.lr": 0.05, "client.mu": 0.0}  # the base config's values
    assert rec.ORIGIN not in study.trials[1].user_attrs
    assert leaderboard(study).set_index("trial").loc[0, "origin"] == "base config"


def test_base_outside_the_space_is_not_enqueued(make_space, storage) -> None:
    space = make_space("  client.lr: {type: float, low: 0.1, high: 1.0}\n")
    study = tune(space, storage=storage, study="nobase", trials=2, log=lambda _: None)
    assert all(rec.ORIGIN not in t.user_attrs for t in study.trials)


def test_missing_data_file_fails_before_the_study_exists(make_space, tmp_path) -> None:
    from fedhpo.errors import DataError

    space = make_space(LR_MU)
    (tmp_path / "base.yaml").write_text("data: {name: idx, options: {path: no/such/folder}}\n")
    db = tmp_path / "never.db"
    with pytest.raises(DataError, match="no/such/folder"):
        tune(space, storage=f"sqlite:///{db}", log=lambda _: None)
    assert not db.exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_counts_this_session_trials(make_space, storage, jobs) -> None:
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: none, trials: 4, seed: 0, promote: 0}"
    )
    first: list[tuple[int, int, float | None, float | None]] = []
    second: list[tuple[int, int, float | None, float | None]] = []
    tune(space, storage=storage, trials=3, jobs=jobs, progress=lambda *a: first.append(a))
    tune(space, storage=storage, trials=2, jobs=jobs, progress=lambda *a: second.append(a))
    # the enqueued base-config trial counts once, in the first session; resumed trials restart
    assert first[-1][:2] == (3, 3) and second[-1][:2] == (2, 2)
    assert all(0 <= done <= total for done, total, _, _ in first + second)
    assert second[-1][2] is not None  # the best value so far
    assert {share for *_, share in first + second} == {None}  # no budget: no share of it


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_of_a_budgeted_search_is_its_share_of_the_budget(
    make_space, storage, jobs
) -> None:
    """With a budget the number of trials is unknown; what the search has spent is not."""
    space = make_space(LR_MU, tuner="{sampler: random, seed: 0, promote: 0}", fidelity="{}")
    first: list[tuple[int, int, float | None, float | None]] = []
    second: list[tuple[int, int, float | None, float | None]] = []
    study = tune(space, storage=storage, budget=3, jobs=jobs, progress=lambda *a: first.append(a))
    before = {t.number for t in study.trials}
    study = tune(space, storage=storage, budget=2, jobs=jobs, progress=lambda *a: second.append(a))
    base = load_space(space).base
    full = run_steps(base, cached_dataset(base.data))
    for calls, budget, trials in (
        (first, 3, [t for t in study.trials if t.number in before]),
        (second, 2, [t for t in study.trials if t.number not in before]),
    ):
        shares = [share for *_, share in calls]
        assert all(share is not None for share in shares) and shares == sorted(shares)
        spent = sum(rec.trial_steps(t) for t in trials)
        # the last report is what the session spent, as a share of its own budget: about all
        assert shares[-1] == pytest.approx(spent / (budget * full))
        assert 0.95 <= shares[-1] <= 1.2
        assert calls[-1][0] == len(trials) and calls[-1][1] == 0  # trials done, total unknown


@pytest.mark.parametrize("sampler", ["tpe", "random", "gp", "cmaes", "qmc"])
@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving", "median", "none"])
def test_every_sampler_and_pruner_runs_a_study(make_space, storage, sampler, pruner) -> None:
    space = make_space(
        LR_MU, tuner=f"{{sampler: {sampler}, pruner: {pruner}, trials: 3, seed: 0, promote: 0}}"
    )
    study = tune(space, storage=storage, study="s", log=lambda _: None)
    assert len(study.trials) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert len({tuple(t.params.values()) for t in study.trials}) == 3


def test_grid_sampler_enumerates_the_grid(make_space, storage) -> None:
    space = make_space(
        "  client.lr: {type: categorical, choices: [0.01, 0.1]}\n"
        "  client.local_epochs: {type: int, low: 1, high: 2}\n",
        tuner="{sampler: grid, pruner: none, seed: 0, promote: 0}",
    )
    study = tune(space, storage=storage, study="g", log=lambda _: None)
    points = {(t.params["client.lr"], t.params["client.local_epochs"]) for t in study.trials}
    assert points == {(0.01, 1), (0.01, 2), (0.1, 1), (0.1, 2)}


def test_a_conditional_grid_runs_each_config_once_and_asking_for_more_is_no_error(
    make_space, storage
) -> None:
    # 2 x 2 sgd configs (momentum 0 or 0.9) and 2 adam ones, not 2 x 2 x 2: a search asking
    # for more ran the 6 and then said "the search stopped short: 6 of 8 trials done"
    space = make_space(
        "  server.optimizer: {type: categorical, choices: [sgd, adam]}\n"
        "  server.lr: {type: categorical, choices: [0.5, 1.0]}\n"
        "  server.momentum: {type: float, low: 0.0, high: 0.9, step: 0.9, "
        "when: {server.optimizer: sgd}}\n",
        tuner="{sampler: grid, pruner: none, seed: 0, promote: 0}",
    )
    study = tune(space, storage=storage, study="c", trials=4, log=lambda _: None)
    study = tune(space, storage=storage, study="c", trials=12, log=lambda _: None)
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(points) == len(set(points)) == 6


@pytest.mark.parametrize(
    ("metric", "test_rounds"), [("val_loss", [6]), ("test_loss", [1, 2, 3, 4, 5, 6])]
)
def test_test_set_is_scored_only_when_the_objective_needs_it(
    make_space, storage, metric, test_rounds
) -> None:
    space = make_space(
        LR_MU, objective=f"{{metric: {metric}}}", fidelity="{rounds: 6, report_every: 2}"
    )
    study = tune(space, storage=storage, study="t", trials=1, log=lambda _: None)
    (trial,) = study.trials
    curves = trial.user_attrs[rec.CURVES]
    scored = [r for r, v in zip(curves["round"], curves["test_accuracy"], strict=True) if v]
    assert scored == test_rounds
    # the test set on the base config's eval_every (1) only when the objective needs it;
    # the pruner sees validation every report_every rounds either way
    assert sorted(trial.intermediate_values) == [2, 4, 6]
    assert trial.user_attrs[rec.FIDELITY]["report_every"] == 2
    assert trial.user_attrs[rec.CONFIG]["federation"]["eval_every"] == (1 if scored != [6] else 6)


def test_tuning_the_cohort_share_exports_a_runnable_config(make_space, storage) -> None:
    # the base sets clients_per_round; a trial's client_fraction must replace it everywhere:
    # in the trial, in promotion and in `fedhpo best` (one merge rule: RunConfig.with_values)
    space = make_space(
        "  federation.client_fraction: {type: float, low: 0.2, high: 0.6}\n",
        tuner="{sampler: random, pruner: none, trials: 2, promote: 1}",
    )
    study = tune(space, storage=storage, study="cf", log=lambda _: None)
    config = best_config(study)
    assert config.federation.clients_per_round is None
    assert (
        config.federation.client_fraction == best_trial(study).params["federation.client_fraction"]
    )
    assert rec.promotions(study)


def test_numerical_faults_are_pruned_with_a_reason_and_the_study_goes_on(
    make_space, storage, tmp_path
) -> None:
    space = make_space(
        "  client.lr: {type: categorical, choices: [0.05, 0.1, 1000.0]}\n"
        "  client.mu: {type: categorical, choices: [0.0, 1000000.0]}\n",
        tuner="{sampler: grid, pruner: none, seed: 0}",
    )
    base = tmp_path / "base.yaml"  # an MLP: lr 1e3 blows it up (logreg merely saturates)
    base.write_text(base.read_text().replace("{name: logreg}", "{name: mlp}"))
    study = tune(space, storage=storage, study="num", log=lambda _: None)
    assert len(study.trials) == 6
    for t in study.trials:
        faulty = t.params["client.lr"] == 1000.0 or t.params["client.mu"] == 1e6
        assert t.state == (TrialState.PRUNED if faulty else TrialState.COMPLETE), t.params
        if faulty:
            assert t.user_attrs[rec.STATUS_REASON].startswith("diverged: non-finite")
    first_pruned = min(t.number for t in study.trials if t.state == TrialState.PRUNED)
    assert any(t.state == TrialState.COMPLETE and t.number > first_pruned for t in study.trials)


def test_promotion_reserves_the_base_configs_seeds_at_their_own_cost(make_space) -> None:
    # the reserve counted every base-config seed as one base run (seed 0's); seed 1 samples
    # other cohorts, and on the demo it cost 1.03 runs, so `--promote 1 --seeds 2` skipped
    # the base config ("its seeds cost 2.03 full runs, 1.96 are left")
    from fedhpo.tune import full_config
    from fedhpo.tune._budget import run_steps
    from fedhpo.tune._objective import cached_dataset
    from fedhpo.tune._promote import promotion_reserve

    space = load_space(make_space(LR_MU))
    dataset = cached_dataset(space.base.data)
    full = run_steps(space.base, dataset)
    seed_1 = run_steps(full_config(space.base, {}, space.base.seed + 1), dataset)
    assert seed_1 != full  # the other seed's cohorts hold other clients
    assert promotion_reserve(space, 2, 2, full) == 2 * full + full + seed_1
    assert promotion_reserve(space, 1, 1, full) == full
    assert promotion_reserve(space, 0, 2, full) == 0


def test_promotion_under_a_budget_keeps_a_top_ranked_base_config(make_space) -> None:
    from optuna.distributions import FloatDistribution

    from fedhpo.tune import full_config
    from fedhpo.tune._budget import run_steps
    from fedhpo.tune._objective import cached_dataset
    from fedhpo.tune._promote import _affordable

    space = load_space(make_space(LR_MU))
    dists = {
        "client.lr": FloatDistribution(1e-4, 1.0, log=True),
        "client.mu": FloatDistribution(0.0, 1.0),
    }

    def trial(number: int, lr: float, base: bool) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(
            params={"client.lr": lr, "client.mu": 0.0},
            distributions=dists,
            value=0.5,
            user_attrs={rec.ORIGIN: "base config"} if base else {},
        )
        t.number = number
        return t

    trials = {0: trial(0, 0.05, True), 3: trial(3, 0.2, False)}

    def cost(n: int) -> int:  # the seed-1 re-run of trial n
        return run_steps(
            full_config(space.base, trials[n].params, 1), cached_dataset(space.base.data)
        )

    lines: list[str] = []

    def fit(top: list[int], steps: int, ranked: int) -> list[int]:
        return _affordable(space, trials, top, [(n, 1) for n in top], steps, lines.append, ranked)

    # ranked first, the base config is promoted like any other config
    assert fit([0], cost(0), ranked=1) == [0]
    # appended for comparison, it comes only beside a promoted config, and only if it fits
    assert fit([3, 0], cost(3) + cost(0), ranked=1) == [3, 0]
    assert fit([3, 0], cost(3) + cost(0) - 1, ranked=1) == [3]
    assert lines[-1].startswith("promotion: the base config not re-run")
    assert fit([3, 0], cost(3) - 1, ranked=1) == []
    assert lines[-1].startswith("promotion: trial 3 not re-run")


def test_a_search_stops_its_running_trial_when_the_budget_is_spent(make_space, storage) -> None:
    # full runs of 12 rounds, each the cost of a base run: a budget of 2.5 used to buy three
    # whole runs (the budget was checked only before a trial started)
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: none, seed: 0, promote: 0}", fidelity="{}"
    )
    study = tune(space, storage=storage, study="cap", budget=2.5, log=lambda _: None)
    full = study.user_attrs[rec.COMPUTE]["full_run_steps"]
    per_round = _most_steps_a_round(space)
    spent = study.user_attrs[rec.COMPUTE]["trial_steps"]
    assert 2.5 * full <= spent < 2.5 * full + per_round
    *done, last = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in done] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert last.state == TrialState.PRUNED
    stopped_at = last.intermediate_values and max(last.intermediate_values)
    assert last.user_attrs[rec.STATUS_REASON].startswith(
        f"stopped at round {len(last.user_attrs[rec.CURVES]['round'])}: the search's budget"
    )
    assert stopped_at is None or stopped_at <= 12


def test_parallel_jobs_stop_their_running_trials_when_the_budget_is_spent(
    make_space, storage
) -> None:
    # two jobs each finished the trial it held when the budget ran out (a budget of 6 spent
    # 7.7 in `make demo`); now each running trial stops once the study's compute reaches it
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: none, seed: 0, promote: 0}", fidelity="{}"
    )
    study = tune(space, storage=storage, study="cap2", budget=3.5, jobs=2, log=lambda _: None)
    full = study.user_attrs[rec.COMPUTE]["full_run_steps"]
    per_round = _most_steps_a_round(space)
    spent = study.user_attrs[rec.COMPUTE]["trial_steps"]
    # each job may run on for about two check intervals (a fiftieth of the budget each)
    # and a round
    assert 3.5 * full <= spent <= 3.5 * full + 2 * (2 * 3.5 * full / 50 + per_round)
    cut = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert cut and all("the search's budget" in t.user_attrs[rec.STATUS_REASON] for t in cut)


def _most_steps_a_round(space: Path) -> int:
    """An upper bound of one round's client steps under the tests' base config (4 clients,
    batch 16, 1 local epoch)."""
    from fedhpo.tune._objective import cached_dataset

    base = load_space(space).base
    sizes = cached_dataset(base.data).train_sizes
    return base.federation.clients_per_round * int(max(-(-sizes // base.client.batch_size)))


def test_a_budget_too_small_for_one_full_run_still_completes_a_trial(make_space, storage) -> None:
    # the default schedule stops the first 4 trials at round 1 (the sample); a budget of one
    # full run is spent before the next trial ends, but a search hands back an answer
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: successive_halving, seed: 0}", fidelity="{}"
    )
    study = tune(space, storage=storage, study="tiny", budget=1.0, log=lambda _: None)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 1
    assert best_config(study).client.lr == pytest.approx(complete[0].params["client.lr"])


def test_workers_of_a_budget_study_stop_the_first_trials_as_the_sample(make_space, storage) -> None:
    # `fedhpo worker` sessions have no trial count of their own: the first rung's sample
    # follows the study's budget, as in `fedhpo tune`
    from fedhpo.tune import join_study, run_worker

    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: successive_halving, seed: 0}", fidelity="{}"
    )
    tune(space, storage=storage, study="wb", budget=3.0, create_only=True, log=lambda _: None)
    run_worker(join_study("wb", storage))
    study = optuna.load_study(study_name="wb", storage=storage)
    first = sorted(study.trials, key=lambda t: t.number)[:4]
    assert [t.state for t in first] == [TrialState.PRUNED] * 4
    assert all("one of the first rung's sample" in t.user_attrs[rec.STATUS_REASON] for t in first)


@pytest.mark.parametrize(
    ("budget", "tops", "exported"),
    [
        (2.5, [0.5, 0.6, 0.9], 2),  # stopped at round 6 of 12: 0.45 against the best's 0.30
        (2.5, [0.5, 0.6, 0.5], 1),  # stopped at round 6: 0.25, behind the best there
        (2.2, [0.5, 0.6, 0.9], 1),  # stopped at round 3 of 12, before a third of the run
    ],
)
def test_a_trial_the_budget_stops_while_ahead_is_what_the_search_exports(
    make_space, storage, budget, tops, exported
) -> None:
    # the budget used to throw away the compute of the trial it stopped: on the quality
    # benchmark's w_client that trial, ahead of every complete one at its round, was often
    # the best config the search had found (lr 0.5 / 3 epochs, 0.04 pp of regret, against
    # the complete trial exported at 2.14)
    space = make_space(
        LR_MU, tuner="{sampler: random, pruner: none, seed: 0, promote: 0}", fidelity="{}"
    )
    study = tune(space, storage=storage, study="ahead", budget=budget, run=climbing_run(tops),
                 log=lambda _: None)  # fmt: skip
    states = [t.state for t in sorted(study.trials, key=lambda t: t.number)]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    stop = study.trials[2].user_attrs[rec.BUDGET_STOP]
    reached = len(study.trials[2].user_attrs[rec.CURVES]["round"])
    assert stop == {"round": reached, "rounds": 12, "judged": reached > 12 // 3}
    assert best_trial(study).number == exported
    assert best_config(study).client.lr == pytest.approx(study.trials[exported].params["client.lr"])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"budget": float("nan")}, "budget"),
        ({"budget": 0}, "budget"),
        ({"trials": -1}, "trials"),  # 0: promote an existing study, run no new trial
        ({"jobs": 0}, "jobs"),
        ({"promote_top": -1}, "promote_top"),
        ({"seeds": 0}, "seeds"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_tune_refuses_counts_it_cannot_use_before_making_a_study(
    make_space, tmp_path, kwargs, key
) -> None:
    db = tmp_path / "refused.db"
    with pytest.raises(StudyError, match=f"`{key}`: must be") as error:
        tune(make_space(LR_MU), storage=f"sqlite:///{db}", log=lambda _: None, **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(error.value)
    assert not db.exists()
