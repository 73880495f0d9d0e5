"""``fedhpo worker --study NAME``: join a shared study and run its trials until its budget is
used up across all workers (start one per core, on as many machines as you like)."""

from __future__ import annotations

import argparse
from collections import Counter

import optuna

from fedhpo.cli._common import (
    add_config_args,
    at_least,
    console,
    load_args_plugins,
    load_args_space,
    positive,
    set_located,
)
from fedhpo.cli._study_args import (
    add_storage_arg,
    add_worker_args,
    liveness_from,
    retry_from,
)
from fedhpo.errors import ConfigError, StudyError
from fedhpo.store import mask_url
from fedhpo.store import records as rec
from fedhpo.store.budget import load_budget
from fedhpo.tune import cached_dataset, identity, join_study, run_steps, run_worker, stored_study


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="join a study and run its trials until the study's budget is used",
        description=(
            "Run trials of study NAME until its budget (a trial count and/or a timeout, over "
            "all workers) is used. The study comes from `fedhpo tune --create-only`, or this "
            "worker creates it from --space. SIGINT/SIGTERM fail the current trial cleanly "
            "(it is queued again) and exit 0."
        ),
    )
    p.add_argument("--study", required=True, metavar="NAME", help="study to join")
    p.add_argument("--space", metavar="FILE", help="search space (to create a new study)")
    p.add_argument("--base", metavar="CONFIG", help="base run config (with --space)")
    p.add_argument("--trials", type=at_least(1), metavar="N", help="budget of a study this creates")
    p.add_argument(
        "--timeout", type=positive, metavar="SECONDS", help="budget of a study this creates"
    )
    add_storage_arg(p)
    add_worker_args(p)
    add_config_args(p, "override a value of the base config (with --space)")
    p.set_defaults(func=main)


def _line(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    value = "" if trial.values is None else " " + ", ".join(f"{v:.4f}" for v in trial.values)
    reason = trial.user_attrs.get(rec.STATUS_REASON, "")
    print(f"trial {trial.number}: {trial.state.name.lower()}{value} ({reason})", flush=True)


def _check_new_study_options(args: argparse.Namespace) -> None:
    """Without --space the study is joined as it was made: refuse what would be ignored.

    --base and --set shape the base config of a study this worker creates; --trials and
    --timeout set its budget, and a study records its own (only a study made before budgets
    were recorded takes them)."""
    if args.space is not None:
        return
    for flag, given in (("--base", args.base is not None), ("--set", bool(args.overrides))):
        if given:
            raise ConfigError(
                "applies only with --space, to the base config of a study this worker "
                "creates; without --space the study is joined with the search space and base "
                f"config it records: drop {flag}, or give --space FILE",
                key=flag,
            )
    flag = "--trials" if args.trials is not None else "--timeout"
    if (args.trials is not None or args.timeout is not None) and _records_budget(args):
        raise StudyError(
            f"study {args.study!r} records its own budget, shared by all its workers; {flag} "
            f"is the budget of a study this worker creates from --space: drop {flag}",
            key=flag,
        )


def _records_budget(args: argparse.Namespace) -> bool:
    """Whether study ``--study`` exists and records a budget (without writing anything)."""
    study = stored_study(args.storage, args.study)  # None: join_study says so, and how to make it
    return study is not None and load_budget(study) is not None


def main(args: argparse.Namespace) -> int:
    _check_new_study_options(args)
    load_args_plugins(args)
    trials = args.trials
    space = None if args.space is None else load_args_space(args)
    if space is not None and trials is None and args.timeout is None:
        trials = space.tuner.trials
    with set_located(args):  # the data and model of the base config are checked in it
        joined = join_study(
            args.study,
            args.storage,
            space=space,
            trials=trials,
            timeout=args.timeout,
            plugins=args.plugins,
            liveness=liveness_from(args),
            retry=retry_from(args),
        )
    who = identity()
    b = joined.budget
    parts = [] if b.trials is None else [f"{b.trials} trials"]
    if b.steps is not None:  # recorded in client steps; said in full runs, as tune says it
        base = joined.space.base
        full = run_steps(base, cached_dataset(base.data))
        parts.append(f"{round(b.steps / max(1, full), 3):g} full runs")
    parts += [] if b.timeout is None else [f"{b.timeout:g} s"]
    budget = ", ".join(parts)
    console.print(
        f"worker {who['host']}:{who['pid']} joined study [bold]{args.study}[/bold] in "
        f"{mask_url(args.storage)} (budget over all workers: {budget})"
    )
    report = run_worker(joined, on_trial=_line)
    counts = Counter(report.states.values())
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    stop = f"stopped by {report.interrupted}; " if report.interrupted else ""
    if report.requeued:
        stop += f"trial {report.requeued[0]} failed and was queued again; "
    if not report.states and not report.interrupted:  # say why, rather than "ran 0 trial(s)"
        console.print(f"worker done: ran no trial: the study's budget ({budget}) is used")
        return 0
    console.print(f"worker done: {stop}ran {len(report.states)} trial(s) ({summary})")
    return 0
