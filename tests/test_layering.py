"""The dependency rule (GUIDE.md): each layer imports only what it may."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "fedhpo.sim": ["optuna", "plotly", "fedhpo.tune", "fedhpo.space", "fedhpo.store"],
    "fedhpo.space": ["fedhpo.sim", "plotly"],
    "fedhpo.config": ["optuna", "plotly", "torch", "fedhpo.sim"],
    "fedhpo.report": ["fedhpo.sim", "fedhpo.tune", "fedhpo.space", "torch"],
    "fedhpo.store": ["fedhpo.sim", "fedhpo.tune", "plotly", "torch"],
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_layer_imports(module: str) -> None:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "import pkgutil, fedhpo; "
        f"pkg = sys.modules[{module!r}]; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.')]; "
        "print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    for banned in FORBIDDEN[module]:
        bad = sorted(m for m in loaded if m == banned or m.startswith(banned + "."))
        assert not bad, f"{module} imports {banned}: {bad[:5]}"


def test_public_names_resolve() -> None:
    import fedhpo

    for name in fedhpo.__all__:
        assert getattr(fedhpo, name) is not None, name
    assert callable(fedhpo.run) and callable(fedhpo.write_report)
