"""Full-fidelity runs: simulate a run config and save its outputs to a folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from fedhpo import __version__
from fedhpo._outputs import out_folder, writing_error
from fedhpo.config import RunConfig, dump_config
from fedhpo.sim.clock import SystemsClock
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.engine import RoundCallback, run_simulation
from fedhpo.sim.models import build_model
from fedhpo.sim.result import SimulationResult
from fedhpo.sim.server import make_server_optimizer

RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.yaml"


def run(
    config: RunConfig,
    out: str | Path | None = None,
    *,
    callbacks: Sequence[RoundCallback] = (),
    dataset: FederatedDataset | None = None,
) -> SimulationResult:
    """Run ``config`` and, when ``out`` is given, write ``result.json``, the resolved
    ``config.yaml`` and the final weights ``model.pt`` there (also after Ctrl-C). An ``out``
    that cannot be made (a file is in the way) is an OutputError before the run starts.
    ``dataset``: ``config.data`` built already (see :func:`run_simulation`)."""
    if out is not None:
        out_folder(out)
    result = run_simulation(config, dataset, callbacks=callbacks)
    if out is not None:
        save_run(config, result, Path(out))
    return result


def check_run(config: RunConfig, dataset: FederatedDataset) -> None:
    """Build ``config``'s clock (its trace file), model and server optimizer and take a
    server step of a zero delta, as a run does: a mistake in any (a bad trace file, a
    plugin's exception, an output width that is not the number of classes, a step dropping
    parameters) raises here, before a run starts."""
    SystemsClock(config.systems, dataset.num_clients, 0, config.seed)  # reads a trace file
    model = build_model(config.model, dataset.feature_shape, dataset.num_classes, seed=0)
    params = {name: p.detach() for name, p in model.named_parameters()}
    server = make_server_optimizer(config.server)
    server.step(params, {k: torch.zeros_like(p) for k, p in params.items()}, server.init(params))


def save_run(config: RunConfig, result: SimulationResult, out: Path) -> None:
    """Write a run's outputs to ``out`` (created if missing)."""
    try:
        _write_run(config, result, out)
    except OSError as exc:
        raise writing_error(exc.filename or out, exc) from None


def _write_run(config: RunConfig, result: SimulationResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "fedhpo_version": __version__,
        "config": config.to_dict(),
        "seeds": {"seed": result.seed, "data_seed": result.data_seed},
        **result.to_dict(),
        "wall_seconds": result.wall_seconds,
    }
    (out / RESULT_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    dump_config(config, out / CONFIG_FILE)
    torch.save(result.params, out / WEIGHTS_FILE)
