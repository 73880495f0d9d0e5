"""``fedhpo tune --space FILE``: search, store every trial, print the top and what to do next."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fedhpo.cli._common import (
    add_config_args,
    at_least,
    console,
    load_args_plugins,
    load_args_space,
    plugin_flags,
    positive,
    set_located,
)
from fedhpo.cli._format import leader_note, print_frame
from fedhpo.cli._study_args import add_storage_arg, add_worker_args, liveness_from, retry_from
from fedhpo.report import safe_folder_name
from fedhpo.space import SearchSpace
from fedhpo.store import (
    check_study_name,
    incomplete_summary,
    leaderboard,
    mask_url,
    other_trials,
    records,
    storage_flag,
)
from fedhpo.tune import (
    cached_dataset,
    check_no_trials,
    check_resumable,
    check_runnable,
    check_search_share,
    run_costs,
    tune,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search hyperparameters with low-fidelity federated trials")
    p.add_argument("--space", required=True, metavar="FILE", help="search-space YAML")
    p.add_argument("--study", metavar="NAME", help="study name (default: the space file's stem)")
    p.add_argument(
        "--trials",
        type=at_least(0),
        metavar="N",
        help="new trials in total over all jobs and workers",
    )
    p.add_argument(
        "--budget",
        type=positive,
        metavar="B",
        help="compute to spend, in full-run equivalents (default: the space's, else 10)",
    )
    p.add_argument(
        "--jobs", type=at_least(1), default=1, metavar="N", help="trial processes (default 1)"
    )
    p.add_argument("--timeout", type=positive, metavar="SECONDS", help="stop starting new trials")
    p.add_argument("--base", metavar="CONFIG", help="base run config (overrides the space's)")
    p.add_argument(
        "--promote",
        type=at_least(0),
        metavar="K",
        help="re-run the top K fully (default: space's, else 0)",
    )
    p.add_argument(
        "--seeds",
        type=at_least(1),
        metavar="S",
        help="seeds per promoted config (default: space's, 2)",
    )
    p.add_argument(
        "--create-only",
        action="store_true",
        help="create the study and its budget for `fedhpo worker`s; run no trial here",
    )
    add_storage_arg(p)
    add_worker_args(p)
    add_config_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    load_args_plugins(args)
    space = load_args_space(args)
    trials, budget = args.trials, args.budget
    if trials is None and budget is None:
        trials, budget = space.tuner.trials, space.tuner.budget
    study_name = args.study if args.study is not None else Path(space.source).stem
    check_study_name(study_name)  # before the plan is printed
    promote = space.tuner.promote or 0 if args.promote is None else args.promote
    if trials == 0:  # only promotes an existing study: anything else is an error here
        check_no_trials(
            space, args.storage, study_name, promote=promote, create_only=args.create_only
        )
    if args.create_only:
        with set_located(args):
            return _create_only(args, space, study_name, trials, budget)
    with set_located(args):  # the checks find what --set broke in the base data or model
        check_runnable(space)  # a clear error before the data is built
        dataset = cached_dataset(space.base.data)  # a data error before anything is written
    if trials != 0:
        seeds = space.tuner.seeds if args.seeds is None else args.seeds
        check_search_share(
            space, args.storage, study_name, budget=budget, promote=promote, seeds=seeds
        )
    costs = run_costs(space, dataset) if budget else None
    check_resumable(space, args.storage, study_name)  # the storage, and a study to resume
    plan = [f"{trials} trials" if trials else "", f"budget {budget:g} full runs" if budget else ""]
    if trials == 0:
        plan[0] = f"no new trials, promote the top {promote}"
    console.print(
        f"study [bold]{escape(study_name)}[/bold] in {escape(mask_url(args.storage))}: "
        f"{', '.join(p for p in plan if p)}, "
        f"{args.jobs} job(s), sampler {space.tuner.sampler}, pruner {space.tuner.pruner}"
    )
    if costs is not None and costs.varies:
        console.print(
            "a full run of this space's configs costs "
            + costs.describe(" runs of the base config, the budget's unit"),
            markup=False,
            highlight=False,
        )
    with _TrialBar(trials or 0) as bar:
        study = tune(
            space,
            storage=args.storage,
            study=study_name,
            trials=trials,
            budget=budget,
            jobs=args.jobs,
            timeout=args.timeout,
            promote_top=args.promote,
            seeds=args.seeds,
            plugins=args.plugins,
            liveness=liveness_from(args),
            retry=retry_from(args),
            progress=bar,
            log=bar.log,
        )
    compute = study.user_attrs.get(records.COMPUTE) or {}
    if compute:
        budget = compute.get("budget")
        of = "" if budget is None else f" (budget {budget:g})"
        console.print(f"compute: {compute['full_runs']:g} full-run equivalents{of}")
    board = leaderboard(study, top=5)
    others = other_trials(study)
    counts = others["state"].value_counts().to_dict() if not others.empty else {}
    complete = len(study.trials) - len(others)
    console.print(
        f"{len(study.trials)} trials in the study: {complete} complete, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed"
    )
    if board.empty:  # nothing to export: say why instead of suggesting `fedhpo best`
        console.print(
            f"no trial completed, so there is nothing to export: {incomplete_summary(study)}\n"
            f"next:\n  fedhpo leaderboard {shlex.quote(study_name)}"
            f"{storage_flag(args.storage)} --all",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 0
    print_frame(board, "table", title=f"Top of {study_name}")
    note = leader_note(board)
    if note:
        console.print(note, markup=False, highlight=False)
    console.print(_next_steps(args, study_name), markup=False, highlight=False, soft_wrap=True)
    return 0


def _create_only(
    args: argparse.Namespace,
    space: SearchSpace,
    name: str,
    trials: int | None,
    budget: float | None,
) -> int:
    tune(
        space,
        storage=args.storage,
        study=name,
        trials=trials,
        budget=budget,
        timeout=args.timeout,
        create_only=True,
    )
    parts = [f"{trials} trials" if trials else "", f"{budget:g} full runs" if budget else ""]
    parts.append(f"{args.timeout:g} s" if args.timeout else "")
    url = shlex.quote(mask_url(args.storage))
    console.print(
        f"created study [bold]{escape(name)}[/bold] (budget over all workers: "
        f"{', '.join(p for p in parts if p)}); start workers with:\n"
        f"  fedhpo worker --study {escape(shlex.quote(name))} --storage {escape(url)}"
        f"{escape(plugin_flags(args))}"
    )
    return 0


def _next_steps(args: argparse.Namespace, study_name: str) -> str:
    """The commands to run next, safe to paste: the study name shell-quoted, file names made
    from it confined to their folders, the storage password masked."""
    name = shlex.quote(study_name)
    file = safe_folder_name(study_name)
    s = storage_flag(args.storage)
    p = plugin_flags(args)
    return (
        "next:\n"
        f"  fedhpo leaderboard {name}{s}\n"
        f"  fedhpo best {name}{s}{p} --out configs/best_{file}.yaml\n"
        f"  fedhpo run configs/best_{file}.yaml{p} --out runs/best_{file}\n"
        f"  fedhpo report {name}{s}"
    )


class _TrialBar:
    """A progress bar over the session: its share of the budget when it has one (how many
    trials that buys is not known in advance), else its trials; and the best value so far."""

    def __init__(self, total: int) -> None:
        self.progress = Progress(
            TextColumn("[bold]search"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            console=console,
        )
        count = f"0/{total} trials" if total else "0 trials"
        self.task = self.progress.add_task("search", total=total or None, count=count, best="")

    def __enter__(self) -> _TrialBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def log(self, text: str) -> None:
        """A line above the bar."""
        self.progress.console.print(text)

    def __call__(self, done: int, total: int, best: float | None, share: float | None) -> None:
        text = "" if best is None else f"best {best:.4f}"
        if share is not None:  # the budget's share, a trial stopped by it may pass it a little
            count = f"{done} trials, {share:.0%} of the budget"
            self.progress.update(
                self.task, completed=min(share, 1.0), total=1.0, count=count, best=text
            )
        else:
            count = f"{done}/{total} trials" if total else f"{done} trials"
            self.progress.update(
                self.task, completed=done, total=total or None, count=count, best=text
            )
