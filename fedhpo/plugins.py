"""Plugin modules: user code that registers datasets, models or server optimizers on import."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterable

from fedhpo.errors import ConfigError, FedhpoError


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
            raise _failed(name, exc) from None
        except FedhpoError:
            raise  # a registration mistake says what is wrong itself
        except Exception as exc:  # the plugin's own bug: where, in one line
            raise _failed(name, exc) from None


def _failed(name: str, exc: Exception) -> ConfigError:
    """The error for plugin ``name`` raising ``exc`` on import, with the file and line."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}"
        what = f"SyntaxError: {exc.msg}"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "<frozen" not in f.filename]
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        what = f"{type(exc).__name__}: {exc}"
    return ConfigError(
        f"plugin module {name!r} failed on import at {where}: {what}; fix it (`python -c "
        f"'import {name}'` shows the whole traceback)",
        key="--plugin",
    )
