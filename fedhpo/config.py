"""Run configs: frozen, validated dataclasses; YAML loading; dotted ``--set`` overrides.

A run config is the whole description of one federated run. Every field is checked on
construction; errors name the key path (and the file and line when loaded from YAML).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fedhpo._yaml import YamlDoc, load_yaml, scalar
from fedhpo.errors import ConfigError, FedhpoError

PartitionMethod = Literal["iid", "dirichlet", "shards", "natural"]


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(message, key=key)


def _unit_open(value: float, key: str) -> None:
    _check(0.0 <= value < 1.0, key, f"must be in [0, 1), got {value}")


#: The largest count a run config takes (rounds, epochs, steps, batch size, clients, ...):
#: the largest int32. Far beyond what a run can do, and a larger one cannot be used at all
#: (``local_epochs: 1e29`` overflowed numpy's step count: "Python int too large to convert
#: to C long"). Seeds are not counts: numpy takes seeds of any size.
MAX_COUNT = 2**31 - 1


def _count(value: int | None, key: str, low: int = 1) -> None:
    """``value`` (None: unset, fine) is an integer in [``low``, :data:`MAX_COUNT`]."""
    if value is None:
        return
    _check(value >= low, key, f"must be >= {low}, got {value}")
    _check(value <= MAX_COUNT, key, f"must be at most {MAX_COUNT} (2**31 - 1), got {value}")


def _seed(value: int, key: str) -> None:
    """Seeds are non-negative integers (numpy's generators take no other)."""
    _check(value >= 0, key, f"must be an integer >= 0, got {value}")


#: The largest float32: model parameters are float32, and a factor beyond it cannot be
#: applied to them (torch raises "value cannot be converted to type float without overflow").
FLOAT32_MAX = 3.4028234663852886e38


def _float32(value: float, key: str, *, positive: bool) -> None:
    """``value`` is > 0 (``positive``) or >= 0, and at most the largest float32."""
    low = value > 0 if positive else value >= 0
    _check(low, key, f"must be {'> 0' if positive else '>= 0'}, got {value}")
    _check(
        value <= FLOAT32_MAX, key, f"must be at most 3.4e+38 (parameters are float32), got {value}"
    )


#: The largest ``federation.over_selection``: a round sends at most 11 times its cohort.
MAX_OVER_SELECTION = 10.0

#: The largest ``fedbuff.staleness_exponent``. FedBuff weighs an update ``s`` versions old
#: by ``(1 + s) ** -0.5`` and FedAsync (Xie et al., 2019) uses exponents about that, and 10
#: for its hinge rule; far larger ones weigh every stale update 0 (``2 ** -2000`` underflows),
#: so that a buffer of stale updates has nothing to average.
MAX_STALENESS_EXPONENT = 10.0


@dataclass(frozen=True)
class PartitionConfig:
    """How samples are split into clients (for datasets that are not federated already)."""

    method: PartitionMethod | None = None
    """iid | dirichlet | shards | natural; default: natural if the dataset has clients, else iid."""
    num_clients: int = 100
    alpha: float = 0.5
    """Dirichlet concentration for label skew (smaller is more non-IID)."""
    shards_per_client: int = 2
    min_size: int = 10
    """Smallest number of samples a client may get."""

    def __post_init__(self) -> None:
        _count(self.num_clients, "num_clients")
        _check(self.alpha > 0, "alpha", f"must be > 0, got {self.alpha}")
        _count(self.shards_per_client, "shards_per_client")
        _count(self.min_size, "min_size")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, its builder options, partition and splits."""

    name: str = "synthetic"
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the dataset builder (see ``fedhpo datasets``)."""
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    val_fraction: float = 0.1
    """Share of each client's samples held out for validation."""
    fraction: float = 1.0
    """Share of each client's training samples used (a fidelity knob)."""
    seed: int = 0
    """Seed of data generation and partitioning (kept apart from the training seed)."""

    def __post_init__(self) -> None:
        _check(bool(self.name), "name", "must name a dataset")
        _check(
            0.0 <= self.val_fraction < 1.0,
            "val_fraction",
            f"must be in [0, 1), got {self.val_fraction}",
        )
        _check(0.0 < self.fraction <= 1.0, "fraction", f"must be in (0, 1], got {self.fraction}")
        _seed(self.seed, "seed")

    def whole(self) -> DataConfig:
        """This section at ``fraction`` 1: what the dataset is built from (a run cuts its
        fraction from the built tensors, ``FederatedDataset.at_fraction``), so configs whose
        ``whole()`` are equal share one dataset."""
        return dataclasses.replace(self, fraction=1.0)


@dataclass(frozen=True)
class ModelConfig:
    """Which model from the registry, and its options (e.g. ``hidden: [64]`` for mlp)."""

    name: str = "mlp"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientConfig:
    """Local training: minibatch SGD with momentum, weight decay and FedProx's ``mu``."""

    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    local_epochs: int = 1
    local_steps: int | None = None
    """If set, each client takes exactly this many SGD steps instead of ``local_epochs``."""
    batch_size: int = 16
    mu: float = 0.0
    """FedProx proximal weight: the client loss gains ``mu/2 * ||w - w_global||^2``."""

    def __post_init__(self) -> None:
        _float32(self.lr, "lr", positive=True)
        _unit_open(self.momentum, "momentum")
        _float32(self.weight_decay, "weight_decay", positive=False)
        _count(self.local_epochs, "local_epochs")
        _count(self.local_steps, "local_steps")
        _count(self.batch_size, "batch_size")
        _float32(self.mu, "mu", positive=False)


@dataclass(frozen=True)
class ServerConfig:
    """Server optimizer applied to the averaged client delta (Reddi et al., 2021)."""

    optimizer: str = "sgd"
    """sgd | adam | yogi | adagrad, or a name a plugin registered (the simulator checks the
    name against its registry when it builds the optimizer, as for models and datasets)."""
    lr: float = 1.0
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    options: dict[str, Any] = field(default_factory=dict)
    """Extra hyperparameters of a plugin's server optimizer."""

    def __post_init__(self) -> None:
        _check(bool(self.optimizer), "optimizer", "must name a server optimizer, e.g. sgd")
        _float32(self.lr, "lr", positive=True)
        _unit_open(self.momentum, "momentum")
        _unit_open(self.beta1, "beta1")
        _unit_open(self.beta2, "beta2")
        _float32(self.tau, "tau", positive=True)


@dataclass(frozen=True)
class FederationConfig:
    """Server updates, cohort size, evaluation schedule, and how the server waits."""

    rounds: int = 30
    """Server updates (a synchronous round, or one FedBuff buffer flush)."""
    clients_per_round: int | None = None
    """Cohort size; give this or ``client_fraction`` (default: 10 clients)."""
    client_fraction: float | None = None
    eval_every: int = 1
    """Test-set evaluation period in server updates (the last one is always evaluated)."""
    val_clients: int | None = None
    """How many fixed clients validate (default: all clients, at most 1,000)."""
    mode: Literal["sync", "async"] = "sync"
    """sync: rounds (the server waits at a barrier); async: FedBuff (see ``fedbuff``)."""
    deadline: float | None = None
    """sync: simulated seconds after which a round closes without its stragglers."""
    over_selection: float = 0.0
    """sync: dispatch ``ceil((1 + x) * cohort)`` clients (:meth:`dispatch_size`; x at most
    :data:`MAX_OVER_SELECTION`); the round closes once ``cohort`` updates are in (or at the
    deadline)."""
    stragglers: Literal["drop", "partial"] = "drop"
    """sync with a deadline: drop late clients, or let each do the steps that fit."""
    weighting: Literal["samples", "uniform"] = "samples"
    """Client weights in the mean update: training rows, or one each."""
    time_budget: float | None = None
    """Stop after the first server update at or past this many simulated seconds."""
    target_accuracy: float | None = None
    """Stop after the first server update whose validation accuracy reaches this; its
    simulated time is the run's ``time_to_accuracy``."""

    def __post_init__(self) -> None:
        _count(self.rounds, "rounds")
        _count(self.clients_per_round, "clients_per_round")
        if self.client_fraction is not None:
            _check(
                0.0 < self.client_fraction <= 1.0,
                "client_fraction",
                f"must be in (0, 1], got {self.client_fraction}",
            )
        _check(
            self.clients_per_round is None or self.client_fraction is None,
            "client_fraction",
            "give either clients_per_round or client_fraction, not both",
        )
        _count(self.eval_every, "eval_every")
        _count(self.val_clients, "val_clients")
        self._check_timing()

    def _check_timing(self) -> None:
        for key in ("deadline", "time_budget"):
            value = getattr(self, key)
            if value is not None:
                _check(value > 0 and math.isfinite(value), key, f"must be > 0, got {value}")
        target = self.target_accuracy
        if target is not None:
            _check(0 < target <= 1, "target_accuracy", f"must be in (0, 1], got {target}")
        over = self.over_selection
        _check(over >= 0 and math.isfinite(over), "over_selection", f"must be >= 0, got {over}")
        _check(
            over <= MAX_OVER_SELECTION,
            "over_selection",
            f"must be at most {MAX_OVER_SELECTION:g} (dispatching "
            f"{MAX_OVER_SELECTION + 1:g} times the cohort; a round never sends more clients "
            f"than the federation has), got {over:g}",
        )
        if self.mode == "async":
            sync_only = (("deadline", None), ("over_selection", 0.0), ("stragglers", "drop"))
            for key, unset in sync_only:
                _check(
                    getattr(self, key) == unset,
                    key,
                    "applies to synchronous rounds only; remove it or set federation.mode: sync",
                )
        _check(
            self.stragglers == "drop" or self.deadline is not None,
            "stragglers",
            "partial work needs a federation.deadline to fit the work into",
        )

    def cohort_size(self, num_clients: int) -> int:
        """Number of clients sampled each round in a federation of ``num_clients``."""
        if self.client_fraction is not None:
            return max(1, round(self.client_fraction * num_clients))
        return min(self.clients_per_round or 10, num_clients)

    def dispatch_size(self, cohort: int, num_clients: int) -> int:
        """Clients a synchronous round sends for a cohort of ``cohort``: ``ceil((1 +
        over_selection) * cohort)``, at most ``num_clients``. The product is rounded to 12
        significant digits first, so float noise does not add a client: ``(1 + 0.1) * 100``
        is ``110.00000000000001`` in floats, and 110 clients are sent, not 111."""
        product = float(f"{(1 + self.over_selection) * cohort:.12g}")
        return min(num_clients, math.ceil(product))


@dataclass(frozen=True)
class SystemsConfig:
    """Simulated client hardware and availability (``fedhpo/sim/clock.py``)."""

    sample_seconds: float = 0.001
    """Compute seconds per training row on a client of speed 1 (a step costs a full batch)."""
    speed_sigma: float = 0.0
    """Client speeds are lognormal with median 1 and this sigma (0: all the same)."""
    bandwidth: float = 1.0e6
    """Median link bandwidth in bytes per second, each way."""
    bandwidth_sigma: float = 0.0
    """Lognormal sigma of the clients' bandwidths (0: all the same)."""
    latency: float = 0.05
    """Seconds added to every transfer (the download and the upload)."""
    trace: str | None = None
    """CSV with columns ``speed`` and ``bandwidth`` (bytes/s), one row per client (client
    ``c`` uses row ``c`` mod rows); replaces both distributions."""
    dropout: float = 0.0
    """Probability that a dispatched client never reports."""
    window_period: float | None = None
    """On/off availability: each client is online ``window_on`` of every period of this many
    seconds (random phase per client); a client offline at any time of its trip drops out."""
    window_on: float = 1.0

    def __post_init__(self) -> None:
        for key in ("sample_seconds", "speed_sigma", "bandwidth_sigma", "latency"):
            value = getattr(self, key)
            _check(value >= 0 and math.isfinite(value), key, f"must be >= 0, got {value}")
        _check(
            self.bandwidth > 0 and math.isfinite(self.bandwidth),
            "bandwidth",
            f"must be > 0 (bytes per second), got {self.bandwidth}",
        )
        _unit_open(self.dropout, "dropout")
        if self.window_period is not None:
            period = self.window_period
            ok = period > 0 and math.isfinite(period)
            _check(ok, "window_period", f"must be > 0 seconds, got {period}")
        _check(0 < self.window_on <= 1, "window_on", f"must be in (0, 1], got {self.window_on}")
        if self.trace is not None:
            _check(bool(self.trace), "trace", "must be a CSV file path")


@dataclass(frozen=True)
class FedBuffConfig:
    """Asynchronous buffered aggregation (Nguyen et al., 2022), used when
    ``federation.mode`` is async; ``buffer_size: 1`` is FedAsync. The server step is
    ``server.optimizer`` with ``server.lr`` on the buffer's weighted mean."""

    concurrency: int | None = None
    """Clients training at once (default: the cohort size)."""
    buffer_size: int = 10
    """Client updates per server update."""
    staleness: Literal["constant", "polynomial", "hinge"] = "polynomial"
    """Weight of an update s versions old: 1, (1 + s)^-a, or 1 up to the offset and then
    1 / (a (s - offset) + 1)."""
    staleness_exponent: float = 0.5
    """``a`` of the polynomial and hinge rules, in [0, :data:`MAX_STALENESS_EXPONENT`]."""
    staleness_offset: int = 0
    """The hinge rule's offset."""
    max_staleness: int | None = None
    """Updates staler than this are discarded (default: none are)."""

    def __post_init__(self) -> None:
        _count(self.concurrency, "concurrency")
        _count(self.buffer_size, "buffer_size")
        exponent = self.staleness_exponent
        _check(
            exponent >= 0 and math.isfinite(exponent),
            "staleness_exponent",
            f"must be >= 0, got {exponent}",
        )
        _check(
            exponent <= MAX_STALENESS_EXPONENT,
            "staleness_exponent",
            f"must be at most {MAX_STALENESS_EXPONENT:g} (FedBuff and FedAsync use 0.5, "
            "FedAsync's hinge rule 10; far larger ones give stale updates no weight), "
            f"got {exponent:g}",
        )
        _count(self.staleness_offset, "staleness_offset", low=0)
        _count(self.max_staleness, "max_staleness", low=0)


@dataclass(frozen=True)
class RunConfig:
    """Everything one federated run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    systems: SystemsConfig = field(default_factory=SystemsConfig)
    fedbuff: FedBuffConfig = field(default_factory=FedBuffConfig)
    seed: int = 0
    """Training seed: model init, cohorts, local shuffling."""

    def __post_init__(self) -> None:
        _seed(self.seed, "seed")
        _check(
            self.federation.target_accuracy is None or self.data.val_fraction > 0,
            "federation.target_accuracy",
            "is a validation accuracy, and data.val_fraction is 0 (no validation rows): the "
            "target could never be reached; set data.val_fraction > 0 or drop the target",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON friendly) that :func:`config_from_dict` reads back."""
        return dataclasses.asdict(self)

    def with_values(self, values: Mapping[str, Any]) -> RunConfig:
        """A new validated config with dotted paths set, e.g. ``{"client.lr": 0.1}``.

        The one rule for putting values (a trial's parameters, a fidelity, a seed) on a base
        config, used by trials, promotion and export alike: setting one of the exclusive
        cohort settings ``federation.clients_per_round`` / ``federation.client_fraction``
        clears the other unless ``values`` sets both."""
        data = self.to_dict()
        values = dict(values)
        for mine, other in (_COHORT, _COHORT[::-1]):
            if values.get(mine) is not None and other not in values:
                values[other] = None
        for path, value in values.items():
            set_path(data, path, value)
        return config_from_dict(data)


_COHORT = ("federation.clients_per_round", "federation.client_fraction")


# --------------------------------------------------------------------------- schema walking


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; returns the value in canonical form."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key) if len(inner) == 1 else value
    if origin is Literal:
        choices = typing.get_args(tp)
        _check(value in choices, key, f"must be one of {list(choices)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is dict:
        _check(isinstance(value, Mapping), key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _check(ok, key, f"expected a number, got {value!r} ({type(value).__name__})")
        return float(value)
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        _check(ok, key, f"expected an integer, got {value!r} ({type(value).__name__})")
        return value
    if tp is bool:
        _check(isinstance(value, bool), key, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        _check(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    return value


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    where = prefix or "config"
    _check(isinstance(data, Mapping), where, f"expected a mapping, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown key; valid keys here: {', '.join(names)}", key=path)
        kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.located(key_prefix=prefix or None) from None


def config_from_dict(data: Mapping[str, Any] | None, source: str | None = None) -> RunConfig:
    """Build a validated :class:`RunConfig` from a nested mapping."""
    try:
        return _build(RunConfig, data or {}, "")
    except ConfigError as exc:
        raise exc.located(source=source) from None


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating intermediate mappings."""
    parts = path.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                f"cannot set a key inside a {type(child).__name__}", key=".".join(parts[: i + 1])
            )
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"client.lr=0.1"`` -> ``("client.lr", 0.1)``; values are read as YAML scalars."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key.path=value, e.g. client.lr=0.1")
    return key, scalar(raw.strip())


def override_values(overrides: Iterable[str]) -> dict[str, Any]:
    """``--set`` overrides as dotted paths to values. A mapping sets each of its keys and
    leaves the others: ``client={lr: 0.1, mu: 1}`` is ``client.lr=0.1 client.mu=1``, not a
    client section of defaults but for those two; so ``client={}`` sets nothing."""
    out: dict[str, Any] = {}
    for text in overrides:
        out.update(_leaves(*parse_override(text)))
    return out


def _leaves(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and (value or _is_mapping_path(key)):
        for k, v in value.items():
            yield from _leaves(f"{key}.{k}", v)
    else:  # a value; also {} for a field, an unknown key or inside options: checked as such
        yield key, value


def _is_mapping_path(path: str) -> bool:
    """Whether ``path`` names a config section or a free-form mapping (``model.options``)."""
    tp: Any = RunConfig
    for part in path.split("."):
        if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)) or part not in _hints(tp):
            return False
        tp = _hints(tp)[part]
    return dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a nested dict in place and return it."""
    for key, value in override_values(overrides).items():
        try:
            set_path(data, key, value)
        except ConfigError as exc:
            raise exc.located(source="--set") from None
    return data


@dataclass(frozen=True)
class ConfigOrigin:
    """Where the values of a loaded run config came from: its file (with the line of each
    key; None for the built-in default) and the keys ``--set`` gave."""

    doc: YamlDoc | None
    overrides: frozenset[str]

    def locate(self, exc: FedhpoError) -> FedhpoError:
        """``exc`` with the source and line of its config key: ``--set`` for a key an
        override gave, else the file and the key's line. An error about no config key (an
        output folder, a flag) or that names its own file (a data file) stays as it is."""
        key = exc.key
        if exc.source is not None or key is None:
            return exc
        if any(_related(key, k) for k in self.overrides):
            return exc.located(source="--set")
        line = None if self.doc is None else self.doc.line_of(key)
        if self.doc is None or (line is None and key.split(".")[0] not in _SECTIONS):
            return exc
        return exc.located(source=self.doc.source, line=line)


def _related(key: str, other: str) -> bool:
    """Whether dotted paths ``key`` and ``other`` are one, or one lies inside the other."""
    return key == other or key.startswith(other + ".") or other.startswith(key + ".")


_SECTIONS = frozenset(f.name for f in dataclasses.fields(RunConfig)) | {"config"}


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> RunConfig:
    """Load a run config from YAML (``None``: the built-in default) and apply overrides."""
    return load_config_origin(path, overrides)[0]


def load_config_origin(
    path: str | Path | None = None, overrides: Iterable[str] = ()
) -> tuple[RunConfig, ConfigOrigin]:
    """:func:`load_config`, and where its values came from: errors found later, when its
    dataset or model is built, are located with :meth:`ConfigOrigin.locate` as its own are."""
    overrides = list(overrides)
    doc = None if path is None else load_yaml(path, ConfigError)
    if doc is not None and not isinstance(doc.data, dict):
        raise ConfigError("a run config must be a YAML mapping", source=doc.source)
    data = apply_overrides(dict(doc.data) if doc is not None else {}, overrides)
    origin = ConfigOrigin(doc, frozenset(override_values(overrides)))
    try:
        return _build(RunConfig, data, ""), origin
    except ConfigError as exc:
        located = origin.locate(exc)
        raise located.located(source=None if doc is None else doc.source) from None


def dump_config(config: RunConfig, path: str | Path | None = None) -> str:
    """YAML text of a config; also written to ``path`` when given."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    return text


@dataclass(frozen=True)
class FieldInfo:
    """What a config path accepts: ``kind`` is float | int | bool | str | choice | any."""

    path: str
    kind: str
    choices: tuple[Any, ...] = ()
    optional: bool = False


def field_info(path: str) -> FieldInfo:
    """Describe the config field at a dotted path (free-form ``options`` accept anything)."""
    cls: Any = RunConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        here = ".".join(parts[: i + 1])
        if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
            raise ConfigError("not a config field", key=here)
        hints = _hints(cls)
        if part not in hints:
            valid = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(f"unknown config path; valid keys here: {valid}", key=here)
        tp = hints[part]
        optional = False
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            optional = len(args) < len(typing.get_args(tp))
            tp = args[0]
        if typing.get_origin(tp) is dict:
            return FieldInfo(path, "any", optional=True)
        if i == len(parts) - 1:
            if typing.get_origin(tp) is Literal:
                return FieldInfo(path, "choice", typing.get_args(tp), optional)
            if dataclasses.is_dataclass(tp):
                raise ConfigError("is a section, not a field", key=here)
            return FieldInfo(path, tp.__name__, (), optional)
        cls = tp
    raise ConfigError("empty config path", key=path)
