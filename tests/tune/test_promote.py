"""Promotion across sessions: the compute a session records, and the (config, seed) full runs
an earlier session stored, which a later one reuses instead of running again."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from fedhpo.space import load_space
from fedhpo.store import records as rec
from fedhpo.tune import cached_dataset, full_config, run_steps, schedule, trial_config, tune
from fedhpo.tune._promote import promotion_reserve
from tests.helpers import LR_MU

# low fidelity (6 of the base's 12 rounds): no trial's own run is a full run, so every
# promoted seed is a re-run
TUNER = "{sampler: random, pruner: none, seed: 0, promote: 0}"


def _quiet(_: str) -> None:
    pass


def _seed_steps(space: Path, study: optuna.Study, numbers: set[int], seed: int) -> int:
    """Client steps of the full runs of trials ``numbers`` at ``seed``."""
    base = load_space(space).base
    dataset = cached_dataset(base.data)
    return sum(run_steps(full_config(base, study.trials[n].params, seed), dataset) for n in numbers)


def test_the_compute_line_counts_only_this_sessions_promotion(make_space, storage) -> None:
    # a third session without --promote printed "compute: 3.924 full-run equivalents
    # (budget 1)": the promotion steps of every earlier session, summed over the study
    space = make_space(LR_MU, tuner=TUNER)
    first = tune(space, storage=storage, study="c", trials=3, promote_top=1, seeds=2, log=_quiet)
    promoted = rec.promotions(first)
    assert len(promoted) == 2  # the top trial and the base config, two seeds each
    assert first.user_attrs[rec.COMPUTE]["promotion_steps"] == sum(
        p["steps"] for p in promoted.values()
    )
    second = tune(space, storage=storage, study="c", trials=2, log=_quiet)
    compute = second.user_attrs[rec.COMPUTE]
    assert compute["promotion_steps"] == 0
    assert compute["trial_steps"] == sum(rec.trial_steps(t) for t in second.trials[3:])
    assert compute["full_runs"] == round(compute["trial_steps"] / compute["full_run_steps"], 3)


def test_a_resumed_promotion_reuses_the_stored_runs(make_space, storage) -> None:
    # session 2 re-ran trial 4's seed 1 (0.96 of a full run) and printed the same values
    space = make_space(LR_MU, tuner=TUNER)
    first = tune(space, storage=storage, study="r", trials=3, promote_top=1, seeds=2, log=_quiet)
    stored = rec.promotions(first)
    lines: list[str] = []
    again = tune(
        space, storage=storage, study="r", trials=0, promote_top=1, seeds=2, log=lines.append
    )
    assert again.user_attrs[rec.COMPUTE]["promotion_steps"] == 0
    assert rec.promotions(again) == stored
    assert len(lines) == 2 and all("2 stored runs reused" in line for line in lines), lines
    # a third seed runs only that seed, for each promoted config
    more = tune(space, storage=storage, study="r", trials=0, promote_top=1, seeds=3, log=_quiet)
    promoted = rec.promotions(more)
    assert set(promoted) == set(stored)
    for n, entry in promoted.items():
        assert entry["seeds"] == [0, 1, 2]
        assert entry["values"][:2] == stored[n]["values"]
    new_steps = _seed_steps(space, more, set(stored), 2)
    assert more.user_attrs[rec.COMPUTE]["promotion_steps"] == new_steps
    assert sum(p["steps"] for p in promoted.values()) == (
        sum(p["steps"] for p in stored.values()) + new_steps
    )


def test_a_stored_run_is_reused_only_for_the_same_config(make_space, storage) -> None:
    space = make_space(LR_MU, tuner=TUNER)
    first = tune(space, storage=storage, study="s", trials=3, promote_top=1, seeds=2, log=_quiet)
    stored = rec.promotions(first)
    top = next(n for n in stored if n != 0)
    # runs stored for another config under the top trial's number (as a changed base config
    # or another fedhpo version would have made), and the base config's runs stored by a
    # version that kept no config with them: neither is this session's run
    changed = {str(n): dict(entry) for n, entry in stored.items()}
    changed[str(top)]["config"]["client"]["batch_size"] = 8
    del changed["0"]["config"]
    first.set_user_attr(rec.PROMOTIONS, changed)
    again = tune(space, storage=storage, study="s", trials=0, promote_top=1, seeds=2, log=_quiet)
    rerun = _seed_steps(space, again, {top, 0}, 0) + _seed_steps(space, again, {top, 0}, 1)
    assert again.user_attrs[rec.COMPUTE]["promotion_steps"] == rerun
    assert rec.promotions(again)[top]["config"]["client"]["batch_size"] == 16
    assert rec.promotions(again)[top]["values"] == stored[top]["values"]  # the same runs


def test_the_reserve_leaves_out_the_base_configs_stored_runs(make_space, storage) -> None:
    space_file = make_space(LR_MU, tuner=TUNER)
    study = tune(
        space_file, storage=storage, study="v", trials=3, promote_top=1, seeds=2, log=_quiet
    )
    space = load_space(space_file)
    full = study.user_attrs[rec.COMPUTE]["full_run_steps"]
    base = _seed_steps(space_file, study, {0}, 0) + _seed_steps(space_file, study, {0}, 1)
    assert promotion_reserve(space, 1, 2, full) == full + base
    # both of the base config's seeds are stored: only the top config's second seed is left
    assert promotion_reserve(space, 1, 2, full, study) == full
    third = _seed_steps(space_file, study, {0}, 2)
    assert promotion_reserve(space, 1, 3, full, study) == 2 * full + third


def test_a_resumed_search_under_a_budget_spends_the_reserve_it_no_longer_needs(
    make_space, storage
) -> None:
    # the base config's two seeds are stored, so the second session's search may spend
    # what the first had to leave for them: all but the top config's second seed
    space = make_space(LR_MU, tuner=TUNER)
    tune(space, storage=storage, study="b", trials=3, promote_top=1, seeds=2, log=_quiet)
    again = tune(space, storage=storage, study="b", budget=3.0, promote_top=1, seeds=2, log=_quiet)
    compute = again.user_attrs[rec.COMPUTE]
    full = compute["full_run_steps"]
    assert 2.0 * full <= compute["trial_steps"] < 2.0 * full + full / 6  # a round at most over
    assert compute["trial_steps"] + compute["promotion_steps"] <= 3.0 * full * 1.05


def test_a_budget_promotion_leaves_no_search_in_is_refused_before_anything_is_written(
    make_space, tmp_path
) -> None:
    # --budget 3 --promote 1 --seeds 2 set 3.02 full runs aside: the search got nothing, ran
    # the base config to the first rung, and the session ended with nothing to export
    # ("1 trials, 1037% of the budget")
    from fedhpo.errors import StudyError

    space = make_space(LR_MU, tuner=TUNER.replace("pruner: none", "pruner: successive_halving"))
    db = tmp_path / "never.db"
    loaded = load_space(space)
    dataset = cached_dataset(loaded.base.data)
    full = run_steps(loaded.base, dataset)
    trial = run_steps(trial_config(loaded, {}, schedule(loaded)), dataset)
    budget = (promotion_reserve(loaded, 1, 2, full) + trial / 2) / full  # half a trial left
    with pytest.raises(StudyError, match="less than one trial's run") as exc:
        tune(space, storage=f"sqlite:///{db}", budget=budget, promote_top=1, seeds=2, log=_quiet)
    assert exc.value.key == "--budget"
    assert not db.exists()
    study = tune(
        space,
        storage=f"sqlite:///{db}",
        budget=budget + 3 * trial / full,
        promote_top=1,
        seeds=2,
        log=_quiet,
    )
    assert any(t.state.name == "COMPLETE" for t in study.trials)
