"""Registry names in a run config (dataset, model, server optimizer), checked before a run.

The config only says a name is a string; whether it is registered is the simulator's business,
so validating a config never depends on which modules happen to be imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedhpo.config import RunConfig
from fedhpo.sim.datasets import dataset_options
from fedhpo.sim.models import model_options
from fedhpo.sim.server import check_server_optimizer

#: Config path -> a lookup raising ConfigError (listing the registered names) for unknown ones.
REGISTRY_FIELDS: dict[str, Callable[[str], Any]] = {
    "data.name": dataset_options,
    "model.name": model_options,
    "server.optimizer": check_server_optimizer,
}


def check_name(path: str, name: str) -> None:
    """Raise :class:`~fedhpo.errors.ConfigError` if ``name`` is not registered for ``path``."""
    REGISTRY_FIELDS[path](name)


def check_names(config: RunConfig) -> None:
    """Check every registry name ``config`` uses."""
    check_name("data.name", config.data.name)
    check_name("model.name", config.model.name)
    check_name("server.optimizer", config.server.optimizer)
