"""``fedhpo bench``: time workload W (fast vs reference trainer) or run the FedProx check."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from fedhpo._outputs import out_folder
from fedhpo.bench import (
    DEMO_SPACE,
    AsyncReport,
    WorkloadReport,
    run_async_bench,
    run_fedprox_check,
    run_tune_bench,
    run_workload_w,
    summarize,
    time_config,
)
from fedhpo.cli._common import at_least, path_arg
from fedhpo.config import load_config
from fedhpo.errors import FedhpoError

FEDPROX_CONFIG = "configs/fedprox_synthetic_1_1.yaml"
#: The checkout fedhpo runs from, where the default config and space files live.
_CHECKOUT = Path(__file__).resolve().parents[2]


def _shipped(path: str | None, default: str) -> str:
    """``path`` as given, or else the ``default`` file of the checkout fedhpo runs from
    (``fedhpo bench`` may run from any folder), or else ``default`` in the working folder."""
    if path is not None:
        return path
    shipped = _CHECKOUT / default
    return str(shipped) if shipped.exists() else default


_MB = 1e6


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="time the simulator on workload W, or run the FedProx paper check",
        description=(
            "w: workload W of GUIDE.md with the fast and the reference cohort trainer in one "
            "process. run: the same timing for any run config (--config; default the demo's "
            "base config). async: W with lognormal(sigma 1) client speeds and 10% dropout, "
            "synchronous rounds vs FedBuff (simulated time to the baseline's accuracy). "
            "fedprox: mu=0 vs mu=1 on Synthetic(1,1) and IID (FedProx paper check). "
            "quality: regret of each search strategy's recommended config against a cached "
            "full-fidelity grid, at equal compute."
        ),
    )
    p.add_argument(
        "--workload",
        choices=("w", "run", "async", "fedprox", "quality"),
        default="w",
        help="default: w",
    )
    p.add_argument("--problems", nargs="+", metavar="P", help="quality: problems (default: all)")
    p.add_argument(
        "--tuner-seeds",
        type=at_least(1),
        default=5,
        metavar="N",
        help="quality: tuner seeds 0..N-1",
    )
    p.add_argument(
        "--strategies", nargs="+", metavar="S", help="quality: strategies (default: all)"
    )
    p.add_argument(
        "--truth-seeds",
        nargs="+",
        type=int,
        metavar="S",
        help="quality: ground-truth seeds (default: the problem's, 2-9); runs only what is new",
    )
    p.add_argument(
        "--cache", default="runs/bench/quality", metavar="DIR", help="quality: ground truth"
    )
    p.add_argument(
        "--budget",
        type=float,
        metavar="B",
        help="quality: compute per strategy in full-run equivalents (default: each problem's, "
        "10); the cached ground truth is reused",
    )
    p.add_argument(
        "--out", type=path_arg, metavar="DIR", help="quality: also write an HTML report there"
    )
    p.add_argument(
        "--rounds", type=at_least(1), metavar="N", help="rounds (default: 30 / the config's)"
    )
    p.add_argument(
        "--repeat", type=at_least(1), default=1, metavar="R", help="runs per trainer (w, run)"
    )
    p.add_argument(
        "--clients", type=at_least(1), default=1000, metavar="C", help="clients in W (default 1000)"
    )
    p.add_argument("--skip-reference", action="store_true", help="time the fast trainer only")
    p.add_argument(
        "--config",
        metavar="PATH",
        help=f"fedprox: base config; run: the config timed (default {FEDPROX_CONFIG})",
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], metavar="S", help="fedprox data seeds"
    )
    p.add_argument("--jobs", type=at_least(1), default=2, metavar="J", help="fedprox processes")
    p.add_argument(
        "--tune",
        action="store_true",
        help="time the lr_mu demo search with 1 and 2 jobs and report trials per minute",
    )
    p.add_argument(
        "--trials", type=at_least(1), default=20, metavar="N", help="trials per search (--tune)"
    )
    p.add_argument("--space", metavar="FILE", help=f"space for --tune (default {DEMO_SPACE})")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=main, given=_given(p))


#: Which runs each option applies to (``tune``: ``--tune``), in the order of ``--help``.
USES: dict[str, tuple[str, ...]] = {
    "problems": ("quality",),
    "tuner_seeds": ("quality",),
    "strategies": ("quality",),
    "truth_seeds": ("quality",),
    "cache": ("quality",),
    "budget": ("quality",),
    "out": ("quality",),
    "rounds": ("w", "run", "async", "fedprox"),
    "repeat": ("w", "run"),
    "clients": ("w", "async"),
    "skip_reference": ("w", "run", "async"),
    "config": ("run", "fedprox"),
    "seeds": ("fedprox",),
    "jobs": ("fedprox", "quality"),
    "trials": ("tune",),
    "space": ("tune",),
}


def _given(p: argparse.ArgumentParser) -> Any:
    """The options of ``USES`` set to other than their defaults (argparse keeps no record of
    which were typed), as a function of the parsed arguments."""
    defaults = {dest: p.get_default(dest) for dest in [*USES, "workload"]}

    def given(args: argparse.Namespace) -> list[str]:
        return [dest for dest, value in defaults.items() if getattr(args, dest) != value]

    return given


def _check_options(args: argparse.Namespace) -> None:
    """An option of another workload is an error: ignoring it would run something else than
    what was asked for (``fedhpo bench --problems lr_mu`` timed workload W)."""
    given = args.given(args)
    run = "tune" if args.tune else args.workload
    if args.tune and "workload" in given:
        raise FedhpoError(
            "--tune times a search on its own; drop --workload, or drop --tune", key="--workload"
        )
    for dest in given:
        uses = USES.get(dest, (run,))
        if run not in uses:
            flag = "--" + dest.replace("_", "-")
            where = "--tune" if uses == ("tune",) else "--workload " + ", ".join(uses)
            this = "--tune" if args.tune else f"--workload {run}"
            raise FedhpoError(
                f"applies to {where} only (this is {this}); drop it or change the workload",
                key=flag,
            )


def main(args: argparse.Namespace) -> int:
    _check_options(args)
    progress = Console(stderr=True, highlight=False)
    log = None if args.json else progress.print
    if args.tune:
        return _tune(args, log)
    if args.workload == "fedprox":
        return _fedprox(args, log)
    if args.workload == "quality":
        return _quality(args, log)
    trainers = ("fast",) if args.skip_reference else ("fast", "reference")
    if args.workload == "async":
        return _async(args, trainers, log)
    if args.workload == "run":
        path = _shipped(args.config, FEDPROX_CONFIG)
        config = load_config(path)
        if args.rounds:
            config = config.with_values({"federation.rounds": args.rounds})
        report = time_config(config, args.repeat, trainers, log, label=path)
    else:
        report = run_workload_w(args.rounds or 30, args.repeat, args.clients, trainers, log)
    if args.json:
        payload = dataclasses.asdict(report) | {
            "speedup": report.speedup,
            "steady_speedup": report.steady_speedup,
        }
        print(json.dumps(payload, indent=2))
    else:
        print(format_workload(report))
    return 0


def _async(args: argparse.Namespace, trainers: tuple[str, ...], log: Any) -> int:
    report = run_async_bench(args.clients, args.rounds or 30, trainers, log=log)
    if args.json:
        extra = {"time_ratio": report.time_ratio, "speedup_sync": report.speedup("sync")}
        extra["speedup_fedbuff"] = report.speedup("fedbuff")
        print(json.dumps(dataclasses.asdict(report) | extra, indent=2))
    else:
        print(format_async(report))
    return 0


def format_async(report: AsyncReport) -> str:
    """The asynchronous benchmark as plain text: one row per schedule and trainer."""
    columns = ["schedule", "trainer", "updates", "sim s", "test acc", "reached"]
    columns += ["ms/update", "dropped", "cut"]
    rows = [
        [r.schedule, r.trainer, r.updates, r.sim_seconds, r.test_accuracy, str(r.reached)]
        + [r.ms_per_update, r.dropped, r.cut]
        for r in report.rows
    ]
    lines = [
        f"workload W, {report.clients} clients, lognormal(1) speeds, 10% dropout: "
        f"synchronous baseline accuracy {report.target:.4f}",
        plain_table(columns, rows),
        "",
    ]
    ratio = report.time_ratio
    lines.append(
        "FedBuff did not reach the baseline's accuracy in the baseline's simulated time"
        if ratio is None
        else f"FedBuff's simulated time to the baseline's accuracy: {ratio:.3f}x the baseline's"
    )
    for schedule in ("sync", "fedbuff"):
        speedup = report.speedup(schedule)
        if speedup is not None:
            lines.append(f"reference / fast wall per update ({schedule}): {speedup:.1f}x")
    return "\n".join(lines)


def _tune(args: argparse.Namespace, log: Any) -> int:
    space = _shipped(args.space, DEMO_SPACE)
    figures = run_tune_bench(space, args.trials, (1, 2), log)
    if args.json:
        records = [
            dataclasses.asdict(f) | {"trials_per_minute": f.trials_per_minute} for f in figures
        ]
        print(json.dumps(records, indent=2))
        return 0
    columns = ["jobs", "trials", "complete", "pruned", "failed", "wall s", "trials/min", "best"]
    rows: list[list[Any]] = [
        [f.jobs, f.trials, f.complete, f.pruned, f.failed, f.seconds, f.trials_per_minute]
        + ["" if f.best is None else f.best]
        for f in figures
    ]
    print(f"search {space}: {args.trials} trials per run, fresh SQLite study each")
    print(plain_table(columns, rows))
    if len(figures) == 2:
        print(f"2 jobs / 1 job: {figures[1].trials_per_minute / figures[0].trials_per_minute:.2f}x")
    return 0


def _quality(args: argparse.Namespace, log: Any) -> int:
    from fedhpo.bench.quality import PROBLEMS, STRATEGIES, VARIANTS, run_quality
    from fedhpo.report import write_quality

    for kind, flag, given, known in (
        ("problem", "--problems", args.problems, PROBLEMS),
        ("strategy", "--strategies", args.strategies, {**STRATEGIES, **VARIANTS}),
    ):
        unknown = [g for g in given or [] if g not in known]
        if unknown:
            raise FedhpoError(
                f"unknown {kind} {unknown[0]!r}; choose from {', '.join(known)}", key=flag
            )
    if args.truth_seeds is not None:
        for name in args.problems or PROBLEMS:
            try:
                PROBLEMS[name].with_truth_seeds(args.truth_seeds)
            except ValueError as exc:
                raise FedhpoError(str(exc), key="--truth-seeds") from None
    if args.budget is not None:
        try:
            PROBLEMS[next(iter(args.problems or PROBLEMS))].with_budget(args.budget)
        except ValueError as exc:
            raise FedhpoError(f"{exc}, such as 10 or 20", key="--budget") from None
    out_folder(args.cache, key="--cache")  # before the grid's hour of runs
    if args.out:
        out_folder(args.out)
    report = run_quality(
        args.problems or list(PROBLEMS),
        range(args.tuner_seeds),
        args.strategies or list(STRATEGIES),
        args.cache,
        args.jobs,
        log or (lambda _: None),
        args.truth_seeds,
        args.budget,
    )
    data = report.to_json()
    if args.out:
        index = write_quality(data, args.out)
        (log or print)(f"report: {index}")
    if args.json:
        print(json.dumps(data))
        return 0
    for p in report.problems:
        print(
            f"{p.problem}: {p.points} grid points x truth seeds {p.truth_seeds} "
            f"(grid {p.grid_full_runs:.0f} full runs, {p.grid_seconds:.0f} s of compute); "
            f"best {p.best:.4f} at {p.best_point}; budget B = {p.budget:g}"
        )
        floor = ", ".join(
            f"{k} seed{'s' * (k > 1)} {100 * v:.2f} pp" for k, v in p.noise_floor.items()
        )
        print(f"  noise floor (regret of the grid point best on the search seeds): {floor}")
        if p.ceiling:
            top = ", ".join(
                f"{k} seed{'s' * (k > 1)} {w}/{n} (ties {t})" for k, (w, t, n) in p.ceiling.items()
            )
            print(f"  ceiling (that point's wins against random_full): {top}")
    columns = ["problem", "strategy", "seeds", "mean regret pp", "worst pp", "best tried pp",
               "full runs", "grid share", "wins", "ties"]  # fmt: skip
    rows = [
        [r.problem, r.strategy, r.seeds, 100 * r.mean_regret, 100 * r.worst_regret]
        + [100 * r.tried_regret, r.mean_full_runs, r.grid_share, r.wins, r.ties]
        for p in report.problems
        for r in p.rows
    ]
    print(plain_table(columns, rows))
    print("best tried: mean regret of the best config each search ran at all (pruned trials "
          "included), what a perfect choice among its own trials would score")  # fmt: skip
    print("wins / ties: tuner seeds on which the strategy's regret is below / equal to "
          "random_full's (same seed, same budget)")  # fmt: skip
    return 0


def _fedprox(args: argparse.Namespace, log: Any) -> int:
    twice = next((s for i, s in enumerate(args.seeds) if s in args.seeds[:i]), None)
    if twice is not None:  # the mean over seeds would count it twice
        raise FedhpoError(f"seed {twice} is given twice; give each seed once", key="--seeds")
    base = load_config(_shipped(args.config, FEDPROX_CONFIG))
    arms = run_fedprox_check(base, args.seeds, args.rounds, args.jobs, log)
    summary = summarize(arms)
    if args.json:
        print(json.dumps({"arms": [dataclasses.asdict(a) for a in arms], "mean": summary}))
        return 0
    columns = ["variant", "data seed", "mu", "rounds", "status", "train loss", "test acc", "s"]
    rows = [
        [a.variant, a.data_seed, f"{a.mu:g}", a.rounds, a.status, a.train_loss, a.test_accuracy]
        + [a.seconds]
        for a in arms
    ]
    print(plain_table(columns, rows))
    print()
    print("mean over data seeds (train loss of the final global model on all training rows):")
    rows = [
        [s["variant"], f"{s['mu']:g}", s["seeds"], s["train_loss"], s["test_accuracy"]]
        for s in summary
    ]
    print(plain_table(["variant", "mu", "seeds", "train loss", "test acc"], rows))
    return 0


def format_workload(report: WorkloadReport) -> str:
    """The workload figures as plain text: a header, one table row per trainer, the ratio."""
    raw = report.raw_bytes / _MB
    lines = [
        f"{report.name}: {report.clients} clients ({report.rows} rows), {report.cohort} per "
        f"round, {report.rounds} rounds x {report.repeats} repeat(s)",
        f"data built in {report.build_seconds:.2f} s; raw float32 arrays (x + test x) "
        f"{raw:.1f} MB; peak RSS {report.rss_before_build_bytes / _MB:.0f} MB before the "
        f"data, {report.rss_after_build_bytes / _MB:.0f} MB after",
        "",
    ]
    columns = ["trainer", "path", "ms/round", "steady ms/round", "1st run s", "total s"]
    columns += ["updates/s", "test acc", "peak RSS MB"]
    rows = [
        [
            t.trainer,
            t.path,
            t.seconds_per_round * 1e3,
            t.steady_seconds_per_round * 1e3,
            t.first_run_seconds,
            t.total_seconds,
            t.updates_per_second,
            t.test_accuracy,
            t.peak_rss_bytes / _MB,
        ]
        for t in report.trainers
    ]
    lines.append(plain_table(columns, rows))
    peak = max(t.peak_rss_bytes for t in report.trainers)
    lines += [
        "",
        f"peak RSS / raw arrays: {peak / report.raw_bytes:.2f}x "
        f"(growth since start of the data build: "
        f"{(peak - report.rss_before_build_bytes) / report.raw_bytes:.2f}x)",
    ]
    if report.speedup is not None:
        lines.append(f"reference / fast: {report.speedup:.1f}x per round")
    if report.steady_speedup is not None and report.repeats > 1:
        lines.append(
            f"steady state (repeats 2-{report.repeats}; ms/round is over all repeats, the first "
            f"with warm-up): reference / fast {report.steady_speedup:.1f}x per round"
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:#.4g}".rstrip(".")
    return str(value)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned with spaces: text left, numbers right; stable for diffs and scripts."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], (int, float)) for row in rows) if rows else False
        for i in range(len(columns))
    ]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(columns), *(line(r) for r in cells)])
