"""Tests for aggregation, the server optimizers (hand values) and their conformance suite."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest
import torch

from fedhpo.config import ServerConfig
from fedhpo.errors import ConfigError
from fedhpo.sim import server
from fedhpo.sim.client import ClientUpdate
from fedhpo.sim.server import (
    ServerState,
    aggregate,
    list_server_optimizers,
    make_server_optimizer,
    register_server_optimizer,
)


def _update(delta: dict[str, torch.Tensor], n: int) -> ClientUpdate:
    return ClientUpdate(delta=delta, num_samples=n, train_loss=0.0, steps=1, finite=True)


def _scalar(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor([value], dtype=torch.float64)}


def _run(cfg: ServerConfig, x0: float, deltas: list[float]) -> list[tuple[float, ServerState]]:
    """Apply scalar deltas in turn; returns (x, state) after each round."""
    opt = make_server_optimizer(cfg)
    params = _scalar(x0)
    state = opt.init(params)
    out = []
    for d in deltas:
        params, state = opt.step(params, _scalar(d), state)
        out.append((params["w"].item(), state))
    return out


# --------------------------------------------------------------------------- aggregate


def test_aggregate_weights_by_sample_count() -> None:
    a = _update({"w": torch.tensor([1.0, -2.0]), "b": torch.tensor(4.0)}, 1)
    b = _update({"w": torch.tensor([5.0, 2.0]), "b": torch.tensor(0.0)}, 3)
    out = aggregate([a, b])
    assert list(out) == ["w", "b"]
    # (1 * 1 + 3 * 5) / 4 = 4, (1 * -2 + 3 * 2) / 4 = 1, (1 * 4 + 3 * 0) / 4 = 1
    assert torch.equal(out["w"], torch.tensor([4.0, 1.0]))
    assert torch.equal(out["b"], torch.tensor(1.0))
    assert out["w"].dtype == torch.float32


def test_aggregate_ignores_empty_clients() -> None:
    a = _update({"w": torch.tensor([2.0])}, 2)
    empty = _update({"w": torch.tensor([math.nan])}, 0)
    assert torch.equal(aggregate([a, empty])["w"], torch.tensor([2.0]))


def test_aggregate_needs_samples() -> None:
    with pytest.raises(ValueError, match="at least one update"):
        aggregate([])
    with pytest.raises(ValueError, match="at least one update"):
        aggregate([_update({"w": torch.zeros(1)}, 0)])


def test_aggregate_identical_is_exact() -> None:
    d = {"w": torch.randn(50, generator=torch.Generator().manual_seed(0))}
    out = aggregate([_update(d, n) for n in (3, 17, 1, 60, 44)])
    assert torch.equal(out["w"], d["w"])


# --------------------------------------------------------------------------- hand values


def test_fedavg_adds_delta() -> None:
    [(x, state)] = _run(ServerConfig(), 1.0, [0.25])
    assert x == 1.25
    assert state == ServerState()


def test_fedavgm_two_rounds() -> None:
    cfg = ServerConfig(optimizer="sgd", lr=0.5, momentum=0.9)
    (x1, s1), (x2, s2) = _run(cfg, 1.0, [0.2, -0.1])
    # m1 = 0.2, x1 = 1 + 0.5 * 0.2 = 1.1
    assert s1.m["w"].item() == pytest.approx(0.2)
    assert x1 == pytest.approx(1.1)
    # m2 = 0.9 * 0.2 - 0.1 = 0.08, x2 = 1.1 + 0.5 * 0.08 = 1.14
    assert s2.m["w"].item() == pytest.approx(0.08)
    assert x2 == pytest.approx(1.14)


def test_adam_one_round() -> None:
    cfg = ServerConfig(optimizer="adam", lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    [(x1, s1)] = _run(cfg, 0.0, [0.5])
    m1 = 0.1 * 0.5  # (1 - b1) * d
    v1 = 0.99 * 1e-6 + 0.01 * 0.25  # b2 * tau^2 + (1 - b2) * d^2
    assert s1.m["w"].item() == pytest.approx(m1)
    assert s1.v["w"].item() == pytest.approx(v1)
    assert x1 == pytest.approx(0.1 * m1 / (math.sqrt(v1) + 1e-3))


def test_yogi_two_rounds_both_signs() -> None:
    cfg = ServerConfig(optimizer="yogi", lr=1.0, beta1=0.5, beta2=0.9, tau=0.1)
    (x1, s1), (x2, s2) = _run(cfg, 0.0, [0.5, 0.1])
    # v0 = tau^2 = 0.01; d1^2 = 0.25 > v0, sign(v0 - d1^2) = -1 -> v1 = 0.01 + 0.1 * 0.25
    assert s1.v["w"].item() == pytest.approx(0.035)
    assert s1.m["w"].item() == pytest.approx(0.25)
    assert x1 == pytest.approx(0.25 / (math.sqrt(0.035) + 0.1))
    # d2^2 = 0.01 < v1 = 0.035, sign = +1 -> v2 = 0.035 - 0.1 * 0.01; m2 = 0.5*0.25 + 0.5*0.1
    assert s2.v["w"].item() == pytest.approx(0.034)
    assert s2.m["w"].item() == pytest.approx(0.175)
    assert x2 == pytest.approx(x1 + 0.175 / (math.sqrt(0.034) + 0.1))


def test_adagrad_two_rounds() -> None:
    cfg = ServerConfig(optimizer="adagrad", lr=0.5, beta1=0.5, tau=0.1)
    (x1, s1), (x2, s2) = _run(cfg, 2.0, [0.5, -0.2])
    # v1 = 0.01 + 0.25, m1 = 0.25; v2 = v1 + 0.04, m2 = 0.125 - 0.1
    assert s1.v["w"].item() == pytest.approx(0.26)
    assert x1 == pytest.approx(2.0 + 0.5 * 0.25 / (math.sqrt(0.26) + 0.1))
    assert s2.v["w"].item() == pytest.approx(0.30)
    assert s2.m["w"].item() == pytest.approx(0.025)
    assert x2 == pytest.approx(x1 + 0.5 * 0.025 / (math.sqrt(0.30) + 0.1))


# --------------------------------------------------------------------------- registry


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register optimizers without leaking them into other tests."""
    monkeypatch.setattr(server, "_OPTIMIZERS", dict(server._OPTIMIZERS))


def test_builtins_registered() -> None:
    assert list_server_optimizers() == ["adagrad", "adam", "sgd", "yogi"]


def test_unknown_optimizer_is_a_config_error_where_it_is_built() -> None:
    cfg = ServerConfig(optimizer="lamb")  # a config names it; the registry judges it
    with pytest.raises(ConfigError, match="'lamb'; registered: adagrad, adam, sgd, yogi") as err:
        make_server_optimizer(cfg)
    assert err.value.key == "server.optimizer" and "--plugin" in err.value.message


def test_config_validation_does_not_depend_on_imported_modules() -> None:
    code = (
        "import sys\n"
        "from fedhpo.config import config_from_dict\n"
        "c = config_from_dict({'server': {'optimizer': 'from_a_plugin'}})\n"
        "assert 'fedhpo.sim.server' not in sys.modules\n"
        "import fedhpo.sim.server\n"
        "assert config_from_dict(c.to_dict()) == c\n"
        "print(c.server.optimizer)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "from_a_plugin"
    with pytest.raises(ConfigError, match="must name a server optimizer"):
        ServerConfig(optimizer="")


def test_register_plugin_optimizer(registry: None) -> None:
    @register_server_optimizer("halfavg")
    class HalfAvg:
        def __init__(self, cfg: ServerConfig) -> None:
            self.lr = cfg.lr

        def init(self, params):
            return None

        def step(self, params, delta, state):
            return {k: p + 0.5 * self.lr * delta[k] for k, p in params.items()}, state

    opt = make_server_optimizer(ServerConfig(optimizer="halfavg"))
    new, _ = opt.step(_scalar(1.0), _scalar(1.0), opt.init({}))
    assert new["w"].item() == 1.5
    with pytest.raises(ValueError, match="already registered"):
        register_server_optimizer("halfavg")(lambda cfg: HalfAvg(cfg))


# --------------------------------------------------------------------------- conformance


def _configs() -> list[ServerConfig]:
    """Every registered optimizer with non-default settings (and plain FedAvg)."""
    cfgs = [ServerConfig()]
    for name in list_server_optimizers():
        cfgs.append(
            ServerConfig(optimizer=name, lr=0.3, momentum=0.9, beta1=0.8, beta2=0.95, tau=0.01)  # type: ignore[arg-type]
        )
    return cfgs


def _params() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}


def _delta(scale: float = 0.1, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": scale * torch.randn(3, 4, generator=g), "b": scale * torch.randn(4, generator=g)}


def _tensors(state: object) -> dict[str, dict[str, torch.Tensor]]:
    """The dicts of tensors inside a (dataclass) state."""
    if not dataclasses.is_dataclass(state):
        return {}
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def _clone(state: object) -> dict[str, dict[str, torch.Tensor]]:
    return {n: {k: t.clone() for k, t in d.items()} for n, d in _tensors(state).items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cfg", _configs(), ids=lambda c: f"{c.optimizer}-lr{c.lr}")
class TestServerOptimizerConformance:
    """Properties every registered server optimizer must have."""

    def test_identical_updates_aggregate_to_that_update(self, cfg: ServerConfig) -> None:
        opt = make_server_optimizer(cfg)
        params, delta = _params(), _delta()
        agg = aggregate([_update(delta, n) for n in (5, 1, 12)])
        assert _same(agg, delta)
        state = opt.init(params)
        via_agg, _ = opt.step(params, agg, state)
        direct, _ = opt.step(params, delta, state)
        assert _same(via_agg, direct)

    def test_zero_delta_from_init_leaves_params(self, cfg: ServerConfig) -> None:
        opt = make_server_optimizer(cfg)
        params = _params()
        zero = {k: torch.zeros_like(p) for k, p in params.items()}
        new, _ = opt.step(params, zero, opt.init(params))
        assert _same(new, params)

    def test_first_step_moves_along_delta(self, cfg: ServerConfig) -> None:
        opt = make_server_optimizer(cfg)
        params, delta = _params(), _delta()
        new, _ = opt.step(params, delta, opt.init(params))
        for k in params:
            assert torch.equal(torch.sign(new[k] - params[k]), torch.sign(delta[k]))

    def test_step_is_pure_and_deterministic(self, cfg: ServerConfig) -> None:
        opt = make_server_optimizer(cfg)
        params, delta = _params(), _delta()
        state = opt.step(params, _delta(seed=2), opt.init(params))[1]  # a non-trivial state
        p0 = {k: v.clone() for k, v in params.items()}
        d0 = {k: v.clone() for k, v in delta.items()}
        s0 = _clone(state)
        a = opt.step(params, delta, state)
        b = opt.step(params, delta, state)
        assert _same(params, p0) and _same(delta, d0)
        assert all(_same(_tensors(state)[n], s0[n]) for n in s0)
        assert _same(a[0], b[0])
        assert all(a[0][k] is not params[k] for k in params)

    def test_state_matches_params(self, cfg: ServerConfig) -> None:
        opt = make_server_optimizer(cfg)
        params = _params()
        state = opt.init(params)
        for st in (state, opt.step(params, _delta(), state)[1]):
            for tensors in _tensors(st).values():
                if tensors:
                    assert list(tensors) == list(params)
                for k, t in tensors.items():
                    assert t.shape == params[k].shape and t.dtype == params[k].dtype

    def test_output_matches_params(self, cfg: ServerConfig) -> None:
        opt = make_server_optimizer(cfg)
        params = _params()
        new, _ = opt.step(params, _delta(), opt.init(params))
        assert list(new) == list(params)
        assert all(new[k].shape == p.shape and new[k].dtype == p.dtype for k, p in params.items())


# --------------------------------------------------------------------------- plugin mistakes


class _Plain:
    """A correct plugin optimizer (FedAvg) that the cases below break one way each."""

    def __init__(self, cfg: ServerConfig) -> None:
        pass

    def init(self, params):
        return None

    def step(self, params, delta, state):
        return {k: p + delta[k] for k, p in params.items()}, state


class _CtorRaises(_Plain):
    def __init__(self, cfg: ServerConfig) -> None:
        raise RuntimeError("server opt ctor exploded")


class _NoStep:
    def __init__(self, cfg: ServerConfig) -> None:
        pass

    def init(self, params):
        return None


class _InitRaises(_Plain):
    def init(self, params):
        return params["missing"]


class _StepRaises(_Plain):
    def step(self, params, delta, state):
        raise KeyError("step exploded")


class _ParamsOnly(_Plain):
    def step(self, params, delta, state):
        return params


class _DropsKey(_Plain):
    def step(self, params, delta, state):
        return {"w": params["w"]}, state


class _Flattens(_Plain):
    def step(self, params, delta, state):
        return {k: p.flatten() for k, p in params.items()}, state


@pytest.mark.parametrize(
    ("cls", "fragment"),
    [(_CtorRaises, "raised RuntimeError: server opt ctor exploded"),
     (_NoStep, "made a _NoStep without step; it must have init(params)"),
     (_InitRaises, "raised KeyError: 'missing'"),
     (_StepRaises, "raised KeyError: 'step exploded'"),
     (_ParamsOnly, "step returned dict, not a (params, state) pair"),
     (_DropsKey, "step returned params without 'b'"),
     (_Flattens, "step returned 'w' of shape (12,) for one of (3, 4)")],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)  # fmt: skip
def test_a_plugin_optimizer_mistake_is_a_config_error_naming_it(registry, cls, fragment) -> None:
    # each was a traceback from inside a run, or (_DropsKey) a run that "completed"
    register_server_optimizer("broken")(cls)
    params = _params()
    with pytest.raises(ConfigError) as err:
        opt = make_server_optimizer(ServerConfig(optimizer="broken"))
        opt.step(params, _delta(), opt.init(params))
    assert err.value.key == "server.optimizer" and fragment in err.value.message
    assert err.value.message.startswith("server optimizer 'broken' (tests/sim/test_server.py:")
