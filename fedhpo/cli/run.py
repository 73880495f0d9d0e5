"""``fedhpo run CONFIG``: a full-fidelity federated run with a progress bar."""

from __future__ import annotations

import argparse

from fedhpo._outputs import out_folder
from fedhpo.cli._common import (
    RoundProgress,
    add_config_args,
    console,
    load_args_plugins,
    path_arg,
)
from fedhpo.config import RunConfig, load_config_origin
from fedhpo.errors import FedhpoError
from fedhpo.runs import RESULT_FILE, check_run, run
from fedhpo.sim.datasets import build_dataset
from fedhpo.sim.names import check_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a config at full fidelity and save its result")
    p.add_argument("config", nargs="?", help="run config YAML (default: the built-in default)")
    p.add_argument(
        "--out", type=path_arg, metavar="DIR", help="write result.json, config.yaml, model.pt here"
    )
    add_config_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    load_args_plugins(args)
    config, origin = load_config_origin(args.config, args.overrides)
    try:  # the dataset's, model's and optimizer's errors name the file and line, or --set
        return _run(args, config)
    except FedhpoError as exc:
        raise origin.locate(exc) from None


def _run(args: argparse.Namespace, config: RunConfig) -> int:
    check_names(config)  # before the progress bar: nothing is shown for a run never started
    if args.out:
        out_folder(args.out)
    dataset = build_dataset(config.data)  # a data error, too, comes before the bar
    check_run(config, dataset)  # and a model's or server optimizer's
    asked = config.federation.clients_per_round
    if asked is not None and asked > dataset.num_clients:
        console.print(
            f"note: federation.clients_per_round {asked} is more than the {dataset.num_clients} "
            f"clients of the federation: the cohort is all {dataset.num_clients}"
        )
    with RoundProgress(config.federation.rounds) as bar:
        result = run(config, args.out, callbacks=[bar], dataset=dataset)
    console.print(
        f"[bold]{result.status}[/bold] ({result.reason}) in {result.wall_seconds:.1f} s: "
        f"test accuracy {result.test_accuracy:.4f}, test loss {result.test_loss:.4f}, "
        f"{result.bytes_sent / 1e6:.1f} MB sent"
    )
    if args.out:
        console.print(f"saved {args.out}/{RESULT_FILE}")
    return 130 if result.status == "interrupted" else 0
