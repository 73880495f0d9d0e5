"""Turn a study's best trial back into a complete, full-fidelity run config."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import TrialState

from fedhpo._outputs import out_file, writing_error
from fedhpo.config import RunConfig, config_from_dict, dump_config
from fedhpo.errors import StudyError
from fedhpo.store import records as rec
from fedhpo.store._leaderboard import incomplete_summary, leaderboard
from fedhpo.store._storage import storage_flag


def best_trial(
    study: optuna.Study, number: int | None = None, storage: str | None = None
) -> optuna.trial.FrozenTrial:
    """Trial ``number``, or the leaderboard's first (the promoted-mean winner if promotion ran).

    ``storage``: the study's storage URL, for the ``fedhpo leaderboard`` command an error
    suggests (so it can be pasted as it is; None: the default database)."""
    board_cmd = f"fedhpo leaderboard {shlex.quote(study.study_name)}{storage_flag(storage)}"
    if number is not None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not trials or (trials[0].state != TrialState.COMPLETE and not _listed(study, number)):
            raise StudyError(
                f"trial {number} is not a complete trial of this study (nor listed on its "
                f"leaderboard); `{board_cmd}` lists the ones to export",
                key="--trial",
            )
        return trials[0]
    if len(study.directions) > 1:
        raise StudyError(
            "a multi-objective study has no single best trial; pick one from the Pareto front "
            f"with --trial N (see `{board_cmd}`)",
            key="--trial",
        )
    board = leaderboard(study, top=1)
    if board.empty:
        name = study.study_name
        if not study.get_trials(deepcopy=False):
            raise StudyError(f"study {name!r} has no trial yet; run `fedhpo tune` first")
        raise StudyError(
            f"study {name!r} has no complete trial: {incomplete_summary(study)}; "
            f"`{board_cmd} --all` lists every reason"
        )
    # the first may be pruned: the base config re-run by promotion, or a trial the budget
    # stopped while ahead (see `leaderboard`)
    first = int(board["trial"].iloc[0])
    return next(t for t in study.get_trials(deepcopy=False) if t.number == first)


def best_config(
    study: optuna.Study, number: int | None = None, storage: str | None = None
) -> RunConfig:
    """The study's base config (full fidelity) with the best trial's parameters set
    (``storage`` as for :func:`best_trial`)."""
    base = study.user_attrs.get(rec.BASE_CONFIG)
    if base is None:
        raise StudyError(
            f"study {study.study_name!r} was not made by fedhpo tune (no base config recorded)"
        )
    trial = best_trial(study, number, storage)
    return config_from_dict(base).with_values(trial.params)


def export_best(
    study: optuna.Study,
    out: str | Path,
    number: int | None = None,
    storage: str | None = None,
    *,
    plugins: Sequence[str] = (),
) -> RunConfig:
    """Write the best config as YAML to ``out``; ``fedhpo run out`` accepts it unchanged
    (``storage`` as for :func:`best_trial`). ``plugins``: the ``--plugin`` modules the run
    command in the file's header repeats."""
    path = out_file(out, example="best.yaml")
    config = best_config(study, number, storage)
    trial = best_trial(study, number, storage)
    lower = _lower_fidelity(study, trial, config)
    flags = "".join(f" --plugin {shlex.quote(p)}" for p in plugins)
    run = f"fedhpo run {shlex.quote(str(out))}{flags}"
    where = (
        f"at full fidelity.\n# Reproduce with: {run}\n"
        if lower is None
        else f"measured at the search's fidelity ({lower}); this file is the full run, "
        f"whose value differs:\n# {run}\n"
    )
    header = (
        f"# Best config of study {study.study_name!r}: trial {trial.number}, "
        f"{_evidence(study, trial)}, {where}"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + dump_config(config), encoding="utf-8")
    except OSError as exc:
        raise writing_error(path, exc) from None
    return config


def _lower_fidelity(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, config: RunConfig
) -> str | None:
    """How the run that ranked ``trial`` was smaller than ``config``'s full run (rounds,
    cohort, data), e.g. ``4 of 12 rounds, data fraction 0.5``; None if it was the full run
    (a promoted mean is over full runs). A trial the budget stopped counts to its round."""
    promoted = rec.promotions(study).get(trial.number) or {}
    ran = trial.user_attrs.get(rec.CONFIG)
    if promoted.get("mean") is not None or not ran:
        return None
    fed, full = ran.get("federation", {}), config.federation
    rounds = fed.get("rounds")
    stop = trial.user_attrs.get(rec.BUDGET_STOP)
    if stop and trial.state != TrialState.COMPLETE:
        rounds = stop["round"]
    out = []
    if rounds != full.rounds:
        out.append(f"{rounds} of {full.rounds} rounds")
    cohort = (fed.get("clients_per_round"), fed.get("client_fraction"))
    if cohort != (full.clients_per_round, full.client_fraction):
        out.append(
            f"{fed.get('clients_per_round')} clients per round of {full.clients_per_round}"
            if cohort[0] is not None and full.clients_per_round is not None
            else f"cohort {_cohort(*cohort)} of {_cohort(full.clients_per_round, full.client_fraction)}"
        )
    fraction = ran.get("data", {}).get("fraction", 1.0)
    if fraction != config.data.fraction:
        out.append(f"data fraction {fraction:g}")
    return ", ".join(out) or None


def _cohort(clients: int | None, fraction: float | None) -> str:
    return f"{clients} clients" if clients is not None else f"a fraction {fraction:g} of clients"


def _listed(study: optuna.Study, number: int) -> bool:
    board = leaderboard(study)
    return not board.empty and number in set(board["trial"])


def _evidence(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """What ranked ``trial`` first, for the exported file's header."""
    promoted = rec.promotions(study).get(trial.number) or {}
    if promoted.get("mean") is not None:
        return f"promoted mean {promoted['mean']:.4g} over {len(promoted['values'])} seeds"
    stop = trial.user_attrs.get(rec.BUDGET_STOP)
    if stop and trial.state != TrialState.COMPLETE:
        return (
            f"stopped by the budget at round {stop['round']} of {stop['rounds']} while ahead of "
            "the best complete trial at that round"
        )
    return f"value(s) {trial.values}"
