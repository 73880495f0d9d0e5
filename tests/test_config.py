"""Run configs: loading, validation errors with file/key/line, overrides, round trips."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedhpo.config import (
    FederationConfig,
    RunConfig,
    config_from_dict,
    dump_config,
    field_info,
    load_config,
    parse_override,
)
from fedhpo.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_default_config_file_equals_builtin_default() -> None:
    assert load_config(REPO / "configs" / "default.yaml").to_dict() == {
        **RunConfig().to_dict(),
        "model": {"name": "mlp", "options": {"hidden": [64]}},
        "data": {
            **RunConfig().to_dict()["data"],
            "options": {"alpha": 1.0, "beta": 1.0, "num_clients": 30},
        },
        "federation": {**RunConfig().to_dict()["federation"], "clients_per_round": 10},
    }


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    assert isinstance(load_config(path), RunConfig)


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    config = load_config(None, ["client.lr=0.2", "server.optimizer=adam", "client.mu=0.01"])
    path = tmp_path / "c.yaml"
    dump_config(config, path)
    assert load_config(path) == config


def test_overrides_are_typed_like_the_file() -> None:
    config = load_config(None, ["client.lr=1e-3", "model.options.hidden=[32, 16]"])
    assert config.client.lr == pytest.approx(1e-3)
    assert isinstance(config.client.lr, float)
    assert config.model.options == {"hidden": [32, 16]}


def test_int_is_accepted_for_float_but_not_the_reverse() -> None:
    assert load_config(None, ["client.lr=1"]).client.lr == 1.0
    with pytest.raises(ConfigError, match="expected an integer, got 1.5"):
        load_config(None, ["client.local_epochs=1.5"])


def test_unknown_key_lists_valid_keys_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "client:\n  lr: 0.1\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}:3" in text
    assert "`client.learning_rate`" in text
    assert "valid keys here: lr, momentum" in text


@pytest.mark.parametrize(
    ("yaml_text", "key", "fragment"),
    [
        ("client:\n  lr: -0.1\n", "client.lr", "must be > 0, got -0.1"),
        ("client:\n  lr: fast\n", "client.lr", "expected a number, got 'fast'"),
        ("federation:\n  client_fraction: 1.5\n", "federation.client_fraction", "(0, 1]"),
        ("server:\n  optimizer: ''\n", "server.optimizer", "must name a server optimizer"),
        ("client:\n  momentum: 1.0\n", "client.momentum", "[0, 1)"),
        ("client: 3\n", "client", "expected a mapping"),
        (
            "federation:\n  clients_per_round: 5\n  client_fraction: 0.5\n",
            "federation.client_fraction",
            "not both",
        ),
    ],
)
def test_bad_values_name_file_key_and_problem(
    tmp_path: Path, yaml_text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text and f"`{key}`" in text and fragment in text
    assert "\n" not in text


@pytest.mark.parametrize("key", ["seed", "data.seed"])
def test_a_negative_seed_is_a_config_error_not_a_crash(key: str) -> None:
    # `fedhpo run --set seed=-1` was a numpy traceback ("expected non-negative integer")
    with pytest.raises(ConfigError) as info:
        RunConfig().with_values({key: -1})
    assert info.value.key == key and "must be an integer >= 0, got -1" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("client.lr", 1e39),
        ("client.weight_decay", float("inf")),
        ("client.mu", 1e39),
        ("server.lr", 1e39),
        ("server.tau", 1e39),
    ],
)
def test_a_value_beyond_float32_is_a_config_error_not_a_crash(key: str, value: float) -> None:
    # parameters are float32: `fedhpo run --set server.lr=1e39` was a torch RuntimeError
    # ("value cannot be converted to type float without overflow") in the first round
    with pytest.raises(ConfigError) as info:
        RunConfig().with_values({key: value})
    assert info.value.key == key and "at most 3.4e+38" in str(info.value)
    RunConfig().with_values({key: 3.4e38})  # the largest float32 is allowed (and diverges)


COUNTS = [
    "client.local_epochs",
    "client.local_steps",
    "client.batch_size",
    "federation.rounds",
    "federation.clients_per_round",
    "federation.eval_every",
    "federation.val_clients",
    "data.partition.num_clients",
    "data.partition.shards_per_client",
    "data.partition.min_size",
    "fedbuff.concurrency",
    "fedbuff.buffer_size",
    "fedbuff.staleness_offset",
    "fedbuff.max_staleness",
]


@pytest.mark.parametrize("key", COUNTS)
def test_a_count_past_the_largest_int32_is_a_config_error_not_a_crash(key: str) -> None:
    # `client.local_epochs: 1e29` (an int) was "OverflowError: Python int too large to convert
    # to C long" from the simulator's step count, a traceback
    with pytest.raises(ConfigError) as info:
        RunConfig().with_values({key: 10**29})
    assert info.value.key == key
    assert info.value.message == f"must be at most 2147483647 (2**31 - 1), got {10**29}"
    RunConfig().with_values({key: 2**31 - 1})  # the largest int32 is allowed


def test_every_int_field_is_a_capped_count_or_a_seed() -> None:
    # a new int field must be capped too (or be a seed: numpy takes seeds of any size)
    fields = {p for p in _int_paths(RunConfig, "")}
    assert fields == {*COUNTS, "seed", "data.seed"}


def _int_paths(cls: type, prefix: str):
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _int_paths(hint, path + ".")
        elif int in (hint, *typing.get_args(hint)):
            yield path


@pytest.mark.parametrize(
    ("values", "key", "fragment"),
    [
        ({"federation.mode": "fedbuff"}, "federation.mode", "one of ['sync', 'async']"),
        (
            {"federation.mode": "async", "federation.deadline": 5.0},
            "federation.deadline",
            "synchronous rounds only",
        ),
        (
            {"federation.mode": "async", "federation.over_selection": 0.3},
            "federation.over_selection",
            "set federation.mode: sync",
        ),
        ({"federation.stragglers": "partial"}, "federation.stragglers", "needs a federation"),
        (
            # said "partial work needs a federation.deadline", and a deadline is async's error
            {"federation.mode": "async", "federation.stragglers": "partial"},
            "federation.stragglers",
            "applies to synchronous rounds only; remove it or set federation.mode: sync",
        ),
        (
            # an OverflowError in the first round (schedules.Barrier)
            {"federation.over_selection": 1e308},
            "federation.over_selection",
            "must be at most 10 (dispatching 11 times the cohort",
        ),
        (
            # every staleness weight underflowed to 0: a ValueError from the aggregation
            {"fedbuff.staleness_exponent": 2000},
            "fedbuff.staleness_exponent",
            "must be at most 10 (FedBuff and FedAsync use 0.5",
        ),
        ({"federation.deadline": 0}, "federation.deadline", "must be > 0"),
        ({"federation.time_budget": -1.0}, "federation.time_budget", "must be > 0"),
        ({"federation.weighting": "size"}, "federation.weighting", "'samples', 'uniform'"),
        ({"systems.dropout": 1.0}, "systems.dropout", "[0, 1)"),
        ({"systems.bandwidth": 0}, "systems.bandwidth", "bytes per second"),
        ({"systems.speed_sigma": -0.1}, "systems.speed_sigma", "must be >= 0"),
        ({"systems.window_on": 0}, "systems.window_on", "(0, 1]"),
        ({"systems.window_period": 0}, "systems.window_period", "must be > 0"),
        ({"fedbuff.buffer_size": 0}, "fedbuff.buffer_size", "must be >= 1"),
        ({"fedbuff.concurrency": 0}, "fedbuff.concurrency", "must be >= 1"),
        ({"fedbuff.staleness": "linear"}, "fedbuff.staleness", "'polynomial', 'hinge'"),
        ({"fedbuff.staleness_exponent": -1}, "fedbuff.staleness_exponent", "must be >= 0"),
        ({"fedbuff.max_staleness": -1}, "fedbuff.max_staleness", "must be >= 0"),
        ({"fedbuff.buffer": 3}, "fedbuff.buffer", "buffer_size"),
        # a target on validation accuracy with no validation rows could never be reached
        (
            {"data.val_fraction": 0.0, "federation.target_accuracy": 0.5},
            "federation.target_accuracy",
            "data.val_fraction is 0",
        ),
    ],
)
def test_federation_systems_and_fedbuff_keys_are_validated(
    values: dict, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig().with_values(values)
    assert info.value.key == key and fragment in str(info.value)


def test_federation_systems_and_fedbuff_defaults_are_the_lock_step_case() -> None:
    config = RunConfig()
    assert config.federation.mode == "sync" and config.federation.deadline is None
    assert config.systems.dropout == 0 and config.systems.speed_sigma == 0
    assert field_info("fedbuff.staleness").choices == ("constant", "polynomial", "hinge")
    assert field_info("fedbuff.buffer_size").kind == "int"
    assert field_info("systems.trace").optional


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "client:\n  lr: [0.1,\n")
    with pytest.raises(ConfigError, match=r"malformed YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config("no/such/config.yaml")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(path)


def test_bad_override_is_reported_as_set() -> None:
    with pytest.raises(ConfigError, match=r"^--set: `client.lr`"):
        load_config(None, ["client.lr=-1"])
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("client.lr")


def test_a_mapping_override_sets_its_keys_and_keeps_the_sections_others(tmp_path: Path) -> None:
    # `--set client={lr: 0.1}` replaced the whole client section: the file's 20 local epochs,
    # batch 10 and mu 1 silently went back to the defaults (1, 16, 0)
    path = write(tmp_path, "client: {lr: 0.01, local_epochs: 20, batch_size: 10, mu: 1.0}\n")
    config = load_config(path, ["client={lr: 0.1, momentum: 0.5}"])
    assert config.client == load_config(path, ["client.lr=0.1", "client.momentum=0.5"]).client
    assert (config.client.local_epochs, config.client.batch_size, config.client.mu) == (20, 10, 1)
    nested = load_config(path, ["model={name: mlp, options: {hidden: [8]}}"]).model
    assert nested.name == "mlp" and nested.options == {"hidden": [8]}
    with pytest.raises(ConfigError, match=r"^--set: `client.lr`: must be > 0"):
        load_config(path, ["client={lr: -1}"])


def test_an_empty_mapping_override_changes_nothing(tmp_path: Path) -> None:
    # `--set client={}` put the client section back to its defaults (lr 0.05, batch 16): a
    # mapping sets each of its keys and keeps the section's others, and {} has no keys
    path = write(
        tmp_path,
        "client: {lr: 0.01, local_epochs: 20, batch_size: 10}\n"
        "model: {name: mlp, options: {hidden: [8]}}\n",
    )
    base = load_config(path)
    for override in ("client={}", "model.options={}", "federation={}", "data.partition={}"):
        assert load_config(path, [override]) == base, override
    # inside free-form options an empty mapping is a value like any other
    options = load_config(path, ["model.options={extra: {}}"]).model.options
    assert options == {"hidden": [8], "extra": {}}
    with pytest.raises(ConfigError, match=r"^--set: `clinet`: unknown key; valid keys here"):
        load_config(path, ["clinet={}"])
    with pytest.raises(ConfigError, match=r"^--set: `client.lr`: expected a number, got \{\}"):
        load_config(path, ["client.lr={}"])
    with pytest.raises(ConfigError, match=r"^--set: `client.extra`: unknown key"):
        load_config(path, ["client={lr: 0.2, extra: {}}"])


def test_a_merge_key_fills_a_section_and_its_own_keys_win(tmp_path: Path) -> None:
    # `client: {<<: *d, lr: 0.2}` was "malformed YAML: could not determine a constructor for
    # the tag 'tag:yaml.org,2002:merge'"
    path = write(
        tmp_path,
        "server: &d {lr: 0.1}\nclient:\n  <<: [*d, {batch_size: 8, lr: 0.3}]\n  local_epochs: 3\n",
    )
    client = load_config(path).client
    assert (client.lr, client.batch_size, client.local_epochs) == (0.1, 8, 3)
    path = write(tmp_path, "client: &c\n  lr: 0.1\nserver:\n  <<: *c\n  lr: 0.2\n")
    assert load_config(path).server.lr == 0.2
    # a merged key's error points at the line of its `<<`, an own key's at its own line
    text = "client: &c\n  lr: 0.1\n  local_epochs: 2\nserver:\n  <<: *c\n"
    with pytest.raises(ConfigError, match=r"run.yaml:5: `server.local_epochs`: unknown key"):
        load_config(write(tmp_path, text))
    text = "client: &c\n  lr: 0.1\nserver:\n  <<: *c\n  momentum: 2\n"
    with pytest.raises(ConfigError, match=r"run.yaml:5: `server.momentum`: must be in"):
        load_config(write(tmp_path, text))


def test_with_values_validates() -> None:
    config = RunConfig().with_values({"client.mu": 0.5, "server.optimizer": "yogi"})
    assert config.client.mu == 0.5 and config.server.optimizer == "yogi"
    with pytest.raises(ConfigError):
        RunConfig().with_values({"client.batch_size": 0})


def test_configs_are_frozen() -> None:
    config = config_from_dict({})
    with pytest.raises(AttributeError):
        config.client.lr = 1.0  # type: ignore[misc]


def test_cohort_size() -> None:
    assert config_from_dict({}).federation.cohort_size(30) == 10
    assert (
        config_from_dict({"federation": {"client_fraction": 0.1}}).federation.cohort_size(1000)
        == 100
    )
    assert (
        config_from_dict({"federation": {"clients_per_round": 50}}).federation.cohort_size(30) == 30
    )


def test_over_selection_dispatches_the_ceiling_of_the_decimal_product() -> None:
    # (1 + 0.1) * 100 is 110.00000000000001 in floats: 111 clients were sent, not 110
    def size(over: float, cohort: int, clients: int = 1000) -> int:
        return FederationConfig(over_selection=over).dispatch_size(cohort, clients)

    assert size(0.1, 100) == 110 and size(0.1, 50) == 55 and size(0.12, 25) == 28
    assert size(0.5, 3) == 5 and size(0.0, 7) == 7 and size(0.101, 100) == 111
    assert size(0.5, 10, clients=12) == 12  # never more than the federation
    assert size(10, 3) == 33


def test_field_info() -> None:
    assert field_info("server.optimizer").kind == "str"  # a registry name, checked by sim
    assert field_info("client.local_steps").kind == "int"
    assert field_info("client.local_steps").optional
    assert field_info("model.options.hidden").kind == "any"
    with pytest.raises(ConfigError, match="valid keys here"):
        field_info("client.lrr")


# Any YAML mapping gives a config or a ConfigError, never another exception (GUIDE.md, 12).
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
_keys = st.sampled_from(
    [
        "data",
        "model",
        "client",
        "server",
        "federation",
        "seed",
        "lr",
        "name",
        "options",
        "rounds",
        "partition",
        "alpha",
        "optimizer",
        "mu",
        "x",
        "systems",
        "fedbuff",
        "mode",
        "deadline",
        "dropout",
        "buffer_size",
        "trace",
    ]
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=5))
def test_any_mapping_gives_a_config_or_a_config_error(data) -> None:
    try:
        config = config_from_dict(data)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(config, RunConfig)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_override_text_gives_a_config_or_a_config_error(text) -> None:
    try:
        config = load_config(None, [text])
    except ConfigError as exc:
        assert str(exc).startswith("--set") or "key.path=value" in str(exc)
    else:
        assert isinstance(config, RunConfig)
