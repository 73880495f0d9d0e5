"""Server side: the server optimizers applied to the aggregated delta (and a list aggregate).

The optimizers follow Algorithm 2 of Reddi et al. 2021, "Adaptive Federated Optimization"
(no bias correction). ``delta`` is the sample-weighted mean of (local - global) parameters,
so it already points downhill and is *added*: FedAvg is ``sgd`` with lr 1 and momentum 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

from fedhpo.config import ServerConfig
from fedhpo.errors import ConfigError
from fedhpo.plugins import calling, defined_at, is_plugin, qualname
from fedhpo.sim.aggregate import Contributions
from fedhpo.sim.aggregate import aggregate as aggregate_contributions
from fedhpo.sim.client import ClientUpdate, Params

StateT = TypeVar("StateT")


def aggregate(updates: Sequence[ClientUpdate]) -> Params:
    """Sample-count-weighted mean of the updates' deltas (the pseudo-gradient).

    :func:`fedhpo.sim.aggregate.aggregate` of fresh updates weighted by samples, for a list
    of per-client updates. Non-finite deltas propagate.
    """
    used = [u for u in updates if u.num_samples > 0]
    if not used:
        raise ValueError("aggregate needs at least one update with num_samples > 0")
    contrib = Contributions(
        deltas={k: torch.stack([u.delta[k] for u in used]) for k in used[0].delta},
        num_samples=np.array([u.num_samples for u in used], dtype=np.int64),
        staleness=np.zeros(len(used), dtype=np.int64),
    )
    return aggregate_contributions(contrib)


class ServerOptimizer(Protocol[StateT]):
    """A pure server update rule. Call ``init`` once, then ``step`` once per round.

    Neither method may modify its arguments in place.
    """

    def init(self, params: Mapping[str, Tensor]) -> StateT:
        """The optimizer state before the first round."""
        ...

    def step(
        self, params: Mapping[str, Tensor], delta: Mapping[str, Tensor], state: StateT
    ) -> tuple[Params, StateT]:
        """New parameters and state after applying the aggregated ``delta``."""
        ...


ServerOptimizerFactory = Callable[[ServerConfig], ServerOptimizer[Any]]
Fac = TypeVar("Fac", bound=ServerOptimizerFactory)

_OPTIMIZERS: dict[str, ServerOptimizerFactory] = {}


def register_server_optimizer(name: str) -> Callable[[Fac], Fac]:
    """Decorator registering ``factory(cfg: ServerConfig) -> ServerOptimizer`` (e.g. a class).

    Registering a taken name raises ``ValueError``.
    """

    def decorator(factory: Fac) -> Fac:
        if name in _OPTIMIZERS and _OPTIMIZERS[name] is not factory:
            raise ValueError(
                f"a server optimizer named {name!r} is already registered "
                f"({qualname(_OPTIMIZERS[name])}); register {qualname(factory)} under another name"
            )
        _OPTIMIZERS[name] = factory
        return factory

    return decorator


def list_server_optimizers() -> list[str]:
    """Names of the registered server optimizers, sorted."""
    return sorted(_OPTIMIZERS)


def check_server_optimizer(name: str) -> None:
    """Raise :class:`~fedhpo.errors.ConfigError` listing the registered names if ``name`` is
    not one of them."""
    if name not in _OPTIMIZERS:
        names = ", ".join(list_server_optimizers())
        raise ConfigError(
            f"unknown server optimizer {name!r}; registered: {names} "
            "(a --plugin MODULE can register more)",
            key="server.optimizer",
        )


def server_settings(name: str) -> tuple[str, ...] | None:
    """The ``server.*`` settings the optimizer ``name`` reads (``("lr", "momentum")`` for
    sgd), or None for a plugin's: it is given the whole server section, ``options`` included.
    An unknown name is a :class:`~fedhpo.errors.ConfigError`."""
    check_server_optimizer(name)
    factory = _OPTIMIZERS[name]
    reads = getattr(factory, "reads", None)
    return None if is_plugin(factory) or reads is None else tuple(reads)


def check_server_options(cfg: ServerConfig) -> None:
    """Raise :class:`~fedhpo.errors.ConfigError` if ``cfg.options`` is not empty for a
    built-in optimizer, which takes none (they are for a plugin's optimizer)."""
    reads = server_settings(cfg.optimizer)
    if reads is not None and cfg.options:
        raise ConfigError(
            f"unknown option for server optimizer {cfg.optimizer!r}; valid options: none "
            f"(server.options is for a plugin's server optimizer; {cfg.optimizer} is set by "
            f"{', '.join('server.' + r for r in reads)})",
            key=f"server.options.{next(iter(cfg.options))}",
        )


def make_server_optimizer(cfg: ServerConfig) -> ServerOptimizer[Any]:
    """The optimizer ``cfg.optimizer`` names, configured from ``cfg``.

    Options a built-in optimizer does not take are a ConfigError (:func:`check_server_options`);
    a plugin's optimizer comes wrapped in :class:`CheckedOptimizer`: its mistakes are
    ConfigErrors.
    """
    check_server_options(cfg)
    factory = _OPTIMIZERS[cfg.optimizer]
    return CheckedOptimizer(cfg, factory) if is_plugin(factory) else factory(cfg)


_KEY = "server.optimizer"


class CheckedOptimizer:
    """A plugin's server optimizer, each call checked: an exception it raises, a missing
    ``init`` or ``step``, or a step not returning ``(params, state)`` with the keys and shapes
    of ``params`` is a :class:`~fedhpo.errors.ConfigError` naming it and its line.
    """

    def __init__(self, cfg: ServerConfig, factory: ServerOptimizerFactory) -> None:
        self.what = f"server optimizer {cfg.optimizer!r}"
        with calling(self.what, factory, key=_KEY):
            self.inner = factory(cfg)
        missing = [m for m in ("init", "step") if not callable(getattr(self.inner, m, None))]
        if missing:
            raise ConfigError(
                f"{self.what} ({defined_at(factory)}) made a {type(self.inner).__name__} "
                f"without {' or '.join(missing)}; it must have init(params) -> state and "
                "step(params, delta, state) -> (params, state)",
                key=_KEY,
            )

    def init(self, params: Mapping[str, Tensor]) -> Any:
        with calling(self.what, self.inner.init, key=_KEY):
            return self.inner.init(params)

    def step(
        self, params: Mapping[str, Tensor], delta: Mapping[str, Tensor], state: Any
    ) -> tuple[Params, Any]:
        with calling(self.what, self.inner.step, key=_KEY):
            out = self.inner.step(params, delta, state)
        problem = _step_problem(params, out)
        if problem:
            raise ConfigError(
                f"{self.what} ({defined_at(self.inner.step)}): step {problem}; it must return "
                "(params, state), params with the keys and shapes of those it was given",
                key=_KEY,
            )
        return out[0], out[1]


def _step_problem(params: Mapping[str, Tensor], out: Any) -> str | None:
    """What is wrong with ``out``, a step's result for ``params`` (None: nothing)."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], Mapping)):
        return f"returned {type(out).__name__}, not a (params, state) pair"
    new = out[0]
    missing = next((k for k in params if k not in new), None)
    if missing is not None:
        return f"returned params without {missing!r}"
    extra = next((k for k in new if k not in params), None)
    if extra is not None:
        return f"returned params with {extra!r}, which is not one of them"
    for k, p in params.items():
        if not isinstance(new[k], Tensor):
            return f"returned {k!r} as {type(new[k]).__name__}, not a tensor"
        if new[k].shape != p.shape:
            return f"returned {k!r} of shape {tuple(new[k].shape)} for one of {tuple(p.shape)}"
    return None


@dataclass(frozen=True)
class ServerState:
    """State of the built-in optimizers: first moment ``m`` and second moment ``v``.

    Either dict is empty when the optimizer does not use it (FedAvg keeps no state).
    """

    m: Params = field(default_factory=dict)
    v: Params = field(default_factory=dict)


@register_server_optimizer("sgd")
class ServerSGD:
    """``m = momentum * m + delta`` (m starts at 0), ``x = x + lr * m``.

    lr 1 and momentum 0 is FedAvg; momentum > 0 is FedAvgM. Momentum 0 keeps no buffer.
    """

    reads: ClassVar[tuple[str, ...]] = ("lr", "momentum")
    """The ``server.*`` settings it uses (:func:`server_settings`)."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.lr = cfg.lr
        self.momentum = cfg.momentum

    def init(self, params: Mapping[str, Tensor]) -> ServerState:
        if not self.momentum:
            return ServerState()
        return ServerState(m={k: torch.zeros_like(p) for k, p in params.items()})

    def step(
        self, params: Mapping[str, Tensor], delta: Mapping[str, Tensor], state: ServerState
    ) -> tuple[Params, ServerState]:
        if not self.momentum:
            return {k: p.add(delta[k], alpha=self.lr) for k, p in params.items()}, state
        m = {k: state.m[k].mul(self.momentum).add(delta[k]) for k in params}
        return {k: p.add(m[k], alpha=self.lr) for k, p in params.items()}, ServerState(m=m)


class AdaptiveServerOptimizer:
    """Adam-style server step; subclasses give the second-moment rule ``second_moment``.

    ``m = beta1 * m + (1 - beta1) * delta``, ``v = second_moment(v, delta**2)``,
    ``x = x + lr * m / (sqrt(v) + tau)``. State starts at ``m = 0`` and ``v = tau**2``
    (the paper only asks ``v_{-1} >= tau**2``; this choice makes the first step of all three
    rules well defined and keeps ``v > 0`` for Yogi's sign-based update).
    """

    reads: ClassVar[tuple[str, ...]] = ("lr", "beta1", "beta2", "tau")
    """The ``server.*`` settings it uses (:func:`server_settings`)."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.lr = cfg.lr
        self.beta1 = cfg.beta1
        self.beta2 = cfg.beta2
        self.tau = cfg.tau

    def second_moment(self, v: Tensor, delta_sq: Tensor) -> Tensor:
        """The new second moment from the old one and the squared delta."""
        raise NotImplementedError

    def init(self, params: Mapping[str, Tensor]) -> ServerState:
        return ServerState(
            m={k: torch.zeros_like(p) for k, p in params.items()},
            v={k: torch.full_like(p, self.tau**2) for k, p in params.items()},
        )

    def step(
        self, params: Mapping[str, Tensor], delta: Mapping[str, Tensor], state: ServerState
    ) -> tuple[Params, ServerState]:
        m = {k: state.m[k].mul(self.beta1).add(delta[k], alpha=1 - self.beta1) for k in params}
        v = {k: self.second_moment(state.v[k], delta[k] * delta[k]) for k in params}
        new = {k: p + self.lr * m[k] / (v[k].sqrt() + self.tau) for k, p in params.items()}
        return new, ServerState(m=m, v=v)


@register_server_optimizer("adam")
class ServerAdam(AdaptiveServerOptimizer):
    """FedAdam: ``v = beta2 * v + (1 - beta2) * delta**2``."""

    def second_moment(self, v: Tensor, delta_sq: Tensor) -> Tensor:
        return v.mul(self.beta2).add(delta_sq, alpha=1 - self.beta2)


@register_server_optimizer("yogi")
class ServerYogi(AdaptiveServerOptimizer):
    """FedYogi: ``v = v - (1 - beta2) * delta**2 * sign(v - delta**2)``."""

    def second_moment(self, v: Tensor, delta_sq: Tensor) -> Tensor:
        return v - (1 - self.beta2) * delta_sq * torch.sign(v - delta_sq)


@register_server_optimizer("adagrad")
class ServerAdagrad(AdaptiveServerOptimizer):
    """FedAdagrad: ``v = v + delta**2``."""

    reads: ClassVar[tuple[str, ...]] = ("lr", "beta1", "tau")

    def second_moment(self, v: Tensor, delta_sq: Tensor) -> Tensor:
        return v + delta_sq
