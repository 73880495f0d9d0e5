"""Plugin modules: user code that registers datasets, models or server optimizers on import,
and the errors that name that code (file and line) when it fails."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from fedhpo.errors import ConfigError, FedhpoError

_FEDHPO = os.path.dirname(os.path.abspath(__file__)) + os.sep


def load_plugins(modules: Iterable[str]) -> None:
    """Import each named module (the working directory is importable), e.g. ``my_datasets``.

    A plugin registers its extensions at import time with ``register_dataset``,
    ``register_model`` or ``register_server_optimizer``.
    """
    if "" not in sys.path:
        sys.path.insert(0, "")
    for name in modules:
        _check_name(name)
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
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


def _check_name(name: str) -> None:
    """A module name, not a file name (as ``python -m`` wants): ``my_plugin``, ``pkg.mod``."""
    if not name.strip() or name.startswith("."):
        raise ConfigError(
            f"{name!r} is not a module name; give one such as my_plugin (for my_plugin.py in "
            "the working directory) or an installed package's mypkg.plugins",
            key="--plugin",
        )
    if name.endswith(".py") and (os.path.isfile(name) or os.sep in name or "/" in name):
        folder, stem = os.path.split(name[:-3])
        where = f", with {folder} on PYTHONPATH (or run from there)" if folder else ""
        raise ConfigError(
            f"{name!r} is a file name; give the module name: --plugin {stem}{where}",
            key="--plugin",
        )


def _failed(name: str, exc: Exception) -> ConfigError:
    """The error for plugin ``name`` raising ``exc`` on import, with the file and line."""
    hint = ""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}"
        what = f"SyntaxError: {exc.msg}"
    else:
        where = _import_site(exc)
        what = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            hint = f"it imports {exc.name!r}, which is not installed here: install it or "
    return ConfigError(
        f"plugin module {name!r} failed on import at {where}: {what}; {hint}fix it "
        f"(`python -c 'import {name}'` shows the whole traceback)",
        key="--plugin",
    )


def _import_site(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc`` in the plugin's own file (the first
    module body run), else outside fedhpo (not its registries' checks), else the innermost."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    plugin = next((f.filename for f in frames if f.name == "<module>"), None)
    mine = [f for f in frames if f.filename == plugin] or [
        f for f in frames if not os.path.abspath(f.filename).startswith(_FEDHPO)
    ]
    frames = mine or frames
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


# ------------------------------------------------------------- calling registered plugin code


def defined_at(obj: Any) -> str:
    """``file:line`` where the function, method or class ``obj`` is defined (the file relative
    to the working directory when it is inside it), or its qualified name if unknown."""
    try:
        obj = inspect.unwrap(obj)
        return f"{_shown(inspect.getsourcefile(obj) or '?')}:{inspect.getsourcelines(obj)[1]}"
    except (TypeError, OSError):
        return qualname(obj)


def qualname(obj: Any) -> str:
    """``module.QualifiedName`` of a function or class, e.g. ``my_plugin.two_moons``."""
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{getattr(obj, '__module__', None)}.{name}"


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def is_plugin(obj: Any) -> bool:
    """Whether ``obj`` (a registered function or class) is user code, not fedhpo's own."""
    module = getattr(obj, "__module__", None) or ""
    return module != "fedhpo" and not module.startswith("fedhpo.")


@contextmanager
def calling(
    what: str, fn: Callable[..., Any], error: type[FedhpoError] = ConfigError, key: str = ""
) -> Iterator[None]:
    """Run the body, which calls the plugin function ``fn`` (``what``: e.g. "model 'wide'"):
    an exception it raises becomes ``error`` naming ``what``, the line of the plugin's file
    that raised it and the exception. FedhpoErrors, and fedhpo's own code, raise as they are.
    """
    try:
        yield
    except FedhpoError:
        raise
    except Exception as exc:
        if not is_plugin(fn):
            raise
        raised = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise error(
            f"{what} ({_raised_at(exc, fn)}) raised {raised}; fix it there", key=key or None
        ) from None


def _raised_at(exc: BaseException, fn: Callable[..., Any]) -> str:
    """The innermost line of ``fn``'s file in ``exc``'s traceback, else where ``fn`` is."""
    try:
        file = inspect.getsourcefile(inspect.unwrap(fn))
    except TypeError:
        file = None
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
    return f"{_shown(file)}:{lines[-1]}" if file and lines else defined_at(fn)
