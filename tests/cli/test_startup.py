"""What the ``fedhpo`` command does before any subcommand runs: its threads setting and a
Ctrl-C while torch and optuna load."""

from __future__ import annotations

import importlib.abc
import sys

import pytest

from fedhpo.cli import entry
from fedhpo.cli.main import main


@pytest.mark.parametrize("value", ["abc", "", "0", "-1", "1.5"])
def test_a_bad_threads_setting_is_one_line_naming_it(capsys, monkeypatch, tmp_path, value) -> None:
    # int("abc") was a ValueError traceback, 0 a RuntimeError from torch
    monkeypatch.setenv("FEDHPO_THREADS", value)
    code = main(["studies", "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("fedhpo: error: `FEDHPO_THREADS`: must be a positive integer")
    assert repr(value) in err


class _Interrupting(importlib.abc.MetaPathFinder):
    """Ctrl-C while ``fedhpo.cli.main`` (and with it torch and optuna) is imported."""

    def find_spec(self, name, path=None, target=None):
        if name == "fedhpo.cli.main":
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_command_loads_exits_130_without_a_traceback(capsys, monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "fedhpo.cli.main")
    monkeypatch.setattr(sys, "meta_path", [_Interrupting(), *sys.meta_path])
    assert entry() == 130
    assert capsys.readouterr().err == "fedhpo: interrupted\n"
