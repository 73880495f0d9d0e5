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


def test_no_package_imports_another_packages_private_modules() -> None:
    # fedhpo.X._y is X's own business: other packages use what X's __init__ or its public
    # modules (fedhpo.store.records, .budget, .lock, .retry) export
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "fedhpo"
    bad = []
    for path in sorted(root.rglob("*.py")):
        package = path.relative_to(root).parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                private = len(parts) > 2 and parts[0] == "fedhpo" and parts[2].startswith("_")
                if private and parts[1] != package:
                    bad.append(f"{path.relative_to(root.parent)}: {name}")
    assert not bad, bad
