"""Plugin modules: user code that registers datasets, models or server optimizers on import."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

from fedhpo.errors import ConfigError


def load_plugins(modules: Iterable[str]) -> None:
    """Import each named module (the working directory is importable), e.g. ``my_datasets``.

    A plugin registers its extensions at import time with ``register_dataset``,
    ``register_model`` or ``register_server_optimizer``.
    """
    if "" not in sys.path:
        sys.path.insert(0, "")
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                raise ConfigError(
                    f"plugin module {name!r} not found; give an importable module name "
                    "(a .py file in the working directory or an installed package)",
                    key="--plugin",
                ) from None
            raise
