"""check_runnable against the server optimizers a space's trials will get: ``server.options``
(which the built-in optimizers do not take) and ``server.*`` settings no trial's optimizer
reads (each a clean error before a study is written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.sim import server
from fedhpo.sim.server import register_server_optimizer
from fedhpo.space import load_space
from fedhpo.tune import check_runnable, tune
from tests.helpers import BASE

LR = "  client.lr: {type: float, low: 0.01, high: 0.5, log: true}\n"
FOO = "  server.options.foo: {type: float, low: 0.1, high: 1.0}\n"


def write_space(tmp_path: Path, params: str, base: str = BASE) -> Path:
    (tmp_path / "base.yaml").write_text(base)
    path = tmp_path / "space.yaml"
    path.write_text(f"base: base.yaml\nobjective: {{metric: val_accuracy}}\nparams:\n{params}")
    return path


def with_server(base: str, server: str) -> str:
    """BASE with a server section, e.g. `{optimizer: adam}`."""
    return base.replace("seed: 0\n", f"server: {server}\nseed: 0\n")


@pytest.fixture
def damped(monkeypatch):
    """Server optimizer `damped` (a plugin's: it reads server.options.scale, in (0, 1])."""
    monkeypatch.setattr(server, "_OPTIMIZERS", dict(server._OPTIMIZERS))

    @register_server_optimizer("damped")
    class Damped:
        def __init__(self, cfg):
            self.scale = cfg.options.get("scale", 0.5)
            if not 0 < self.scale <= 1:
                raise ValueError(f"scale must be in (0, 1], got {self.scale}")

        def init(self, params):
            return None

        def step(self, params, delta, state):
            return {k: p + self.scale * delta[k] for k, p in params.items()}, state


# ---------------------------------------------------------------------------- server.options


def test_a_searched_server_option_of_a_builtin_optimizer_is_a_space_error(tmp_path):
    # every trial ran sgd as if foo were not there: the same val_accuracy whatever foo was
    path = write_space(tmp_path, FOO)
    with pytest.raises(SearchSpaceError) as exc:
        check_runnable(load_space(path))
    assert exc.value.key == "params.server.options.foo" and exc.value.line == 4
    assert exc.value.source == str(path)
    assert exc.value.message == (
        "server optimizer 'sgd' takes no option 'foo' (its options: none; server.options is "
        "for a plugin's server optimizer), which this space searches for it; remove "
        "params.server.options.foo, or set server.optimizer in the base config (or search "
        "it) to a server optimizer that takes it"
    )
    db = tmp_path / "never.db"
    with pytest.raises(SearchSpaceError, match="'sgd' takes no option 'foo'"):
        tune(path, storage=f"sqlite:///{db}", trials=2, log=lambda _: None)
    assert not db.exists()


def test_a_server_option_in_the_base_config_of_a_builtin_optimizer_is_an_error_there(tmp_path):
    base = with_server(BASE, "{optimizer: adam, options: {foo: 0.5}}")
    with pytest.raises(ConfigError) as exc:
        check_runnable(load_space(write_space(tmp_path, LR, base)))
    assert exc.value.key == "server.options.foo" and exc.value.line == 7
    assert exc.value.source == str(tmp_path / "base.yaml")
    assert exc.value.message.startswith(
        "unknown option for server optimizer 'adam'; valid options: none (server.options is "
        "for a plugin's server optimizer; adam is set by server.lr, server.beta1, "
        "server.beta2, server.tau)"
    )


def test_a_server_option_must_suit_every_optimizer_choice_it_applies_to(tmp_path, damped):
    choices = "  server.optimizer: {type: categorical, choices: [damped, sgd]}\n"
    scale = "  server.options.scale: {type: float, low: 0.1, high: 1.0}\n"
    with pytest.raises(SearchSpaceError, match="choice 'sgd'.*'scale'.*this space") as exc:
        check_runnable(load_space(write_space(tmp_path, choices + scale)))
    assert exc.value.key == "params.server.optimizer.choices" and exc.value.line == 4
    assert "add when: {server.optimizer: damped} to params.server.options.scale" in (
        exc.value.message
    )
    only_damped = scale.replace("1.0}", "1.0, when: {server.optimizer: damped}}")
    check_runnable(load_space(write_space(tmp_path, choices + only_damped)))


def test_the_ends_of_a_plugin_optimizer_option_range_are_built(tmp_path, damped):
    base = with_server(BASE, "{optimizer: damped}")
    scale = "  server.options.scale: {type: float, low: 0.5, high: 2.0}\n"
    with pytest.raises(SearchSpaceError, match="raised ValueError: scale must be in") as exc:
        check_runnable(load_space(write_space(tmp_path, scale, base)))
    assert exc.value.key == "params.server.options.scale.high" and exc.value.line == 4
    check_runnable(load_space(write_space(tmp_path, scale.replace("2.0", "1.0"), base)))


# ------------------------------------------------------------ settings no optimizer reads


@pytest.mark.parametrize(
    ("param", "optimizer", "uses"),
    [
        ("server.beta1", "sgd", "server.lr, server.momentum"),
        ("server.momentum", "adam", "server.lr, server.beta1, server.beta2, server.tau"),
        ("server.beta2", "adagrad", "server.lr, server.beta1, server.tau"),
    ],
)
def test_a_server_setting_the_optimizer_does_not_read_is_a_space_error(
    tmp_path, param, optimizer, uses
):
    # `server.beta1` searched on an sgd base was valid; it cannot change any trial
    base = with_server(BASE, f"{{optimizer: {optimizer}}}")
    path = write_space(tmp_path, f"  {param}: {{type: float, low: 0.1, high: 0.9}}\n", base)
    with pytest.raises(SearchSpaceError) as exc:
        check_runnable(load_space(path))
    assert exc.value.key == f"params.{param}" and exc.value.line == 4
    assert exc.value.message.startswith(
        f"server optimizer '{optimizer}' does not read {param} (it reads {uses}), so this "
        "param cannot change any trial; remove it, or set server.optimizer in the base "
        "config (or search it) to one that reads it: "
    )


def test_a_server_setting_one_optimizer_choice_reads_is_fine(tmp_path, damped):
    beta1 = "  server.beta1: {type: float, low: 0.1, high: 0.9}\n"
    adam = "  server.optimizer: {type: categorical, choices: [sgd, adam]}\n"
    check_runnable(load_space(write_space(tmp_path, adam + beta1)))
    only_sgd = beta1.replace("0.9}", "0.9, when: {server.optimizer: sgd}}")
    with pytest.raises(SearchSpaceError, match="'sgd' does not read server.beta1"):
        check_runnable(load_space(write_space(tmp_path, adam + only_sgd)))
    # a plugin's optimizer is given the whole server section: it may read any of it
    check_runnable(
        load_space(write_space(tmp_path, beta1, with_server(BASE, "{optimizer: damped}")))
    )
