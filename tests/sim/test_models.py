"""Tests for the model registry and the built-in models."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from fedhpo.config import ModelConfig
from fedhpo.errors import ConfigError
from fedhpo.sim import models
from fedhpo.sim.models import build_model, list_models, model_options, register_model


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register models without leaking them into other tests."""
    monkeypatch.setattr(models, "_MODELS", dict(models._MODELS))


@pytest.mark.parametrize(
    ("name", "options", "shape", "classes"),
    [
        ("logreg", {}, (60,), 10),
        ("logreg", {}, (1, 28, 28), 62),
        ("mlp", {}, (60,), 10),
        ("mlp", {"hidden": [32, 16]}, (5,), 3),
        ("mlp", {"hidden": []}, (4,), 2),
        ("cnn", {}, (1, 28, 28), 62),
        ("cnn", {}, (3, 32, 32), 10),
        ("cnn", {}, (1, 8, 12), 4),
    ],
)
def test_output_shape(name: str, options: dict, shape: tuple[int, ...], classes: int) -> None:
    model = build_model(ModelConfig(name, options), shape, classes, seed=0)
    out = model(torch.zeros(7, *shape))
    assert out.shape == (7, classes)


def test_builtins_registered() -> None:
    assert {"logreg", "mlp", "cnn"} <= set(list_models())
    assert model_options("mlp") == ["hidden"]
    assert model_options("cnn") == []


def test_mlp_layout() -> None:
    model = build_model(ModelConfig("mlp", {"hidden": [8, 4]}), (3,), 2, seed=0)
    shapes = {k: tuple(p.shape) for k, p in _params(model).items()}
    assert shapes == {
        "fc0.weight": (8, 3),
        "fc0.bias": (8,),
        "fc1.weight": (4, 8),
        "fc1.bias": (4,),
        "out.weight": (2, 4),
        "out.bias": (2,),
    }


def test_cnn_is_the_leaf_cnn() -> None:
    model = build_model(ModelConfig("cnn"), (1, 28, 28), 62, seed=0)
    shapes = {k: tuple(p.shape) for k, p in _params(model).items()}
    assert shapes["conv1.weight"] == (32, 1, 5, 5)
    assert shapes["conv2.weight"] == (64, 32, 5, 5)
    assert shapes["fc.weight"] == (512, 64 * 7 * 7)
    assert shapes["out.weight"] == (62, 512)


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn"])
def test_init_is_deterministic_per_seed(name: str) -> None:
    shape = (1, 12, 12)
    a = _params(build_model(ModelConfig(name), shape, 3, seed=7))
    b = _params(build_model(ModelConfig(name), shape, 3, seed=7))
    c = _params(build_model(ModelConfig(name), shape, 3, seed=8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_global_rng_untouched_and_irrelevant() -> None:
    state = torch.get_rng_state()
    a = _params(build_model(ModelConfig("mlp"), (5,), 3, seed=1))
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(10)  # advance the global stream; the model must not depend on it
    b = _params(build_model(ModelConfig("mlp"), (5,), 3, seed=1))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_uses_pytorch_default_init() -> None:
    """Same numbers as constructing the layer by hand after seeding the global RNG."""
    model = build_model(ModelConfig("logreg"), (4,), 3, seed=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        ref = nn.Linear(4, 3)
    assert torch.equal(model.linear.weight, ref.weight)
    assert torch.equal(model.linear.bias, ref.bias)


def test_unknown_model_lists_registered() -> None:
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig("resnet"), (4,), 2, seed=0)
    assert err.value.key == "model.name"
    assert "cnn, logreg, mlp" in str(err.value)


def test_unknown_option_lists_valid() -> None:
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig("mlp", {"hiden": [3]}), (4,), 2, seed=0)
    assert err.value.key == "model.options.hiden"
    assert "hidden" in err.value.message
    with pytest.raises(ConfigError, match="valid options: none") as err:
        build_model(ModelConfig("logreg", {"hidden": [3]}), (4,), 2, seed=0)
    assert err.value.key == "model.options.hidden"


@pytest.mark.parametrize("hidden", [[0], ["64"], 64, [True], [1.5]])
def test_mlp_hidden_validated(hidden: object) -> None:
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig("mlp", {"hidden": hidden}), (4,), 2, seed=0)
    assert err.value.key == "model.options.hidden"


@pytest.mark.parametrize("hidden", [[10**29], [2**31], [100_000, 100_000]])
def test_an_mlp_too_large_to_allocate_is_refused_before_it_is_built(hidden: list[int]) -> None:
    # widths past int64 gave torch's "Overflow when unpacking long long" traceback, and
    # 2**31 a 2**31 x 4 weight (32 GB) allocated before anything said no
    with pytest.raises(ConfigError, match=r"parameters \(at most 1,000,000,000") as err:
        build_model(ModelConfig("mlp", {"hidden": hidden}), (4,), 2, seed=0)
    assert err.value.key == "model.options.hidden"


@pytest.mark.parametrize("shape", [(60,), (28, 28), (1, 3, 3)])
def test_cnn_needs_images(shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="cnn.*channels, height, width"):
        build_model(ModelConfig("cnn"), shape, 2, seed=0)


def test_register_plugin_model(registry: None) -> None:
    @register_model("tiny")
    def tiny(input_shape: tuple[int, ...], num_classes: int, *, scale: float = 1.0) -> nn.Module:
        return nn.Linear(input_shape[0], num_classes, bias=scale > 0)

    assert "tiny" in list_models()
    model = build_model(ModelConfig("tiny", {"scale": 0.0}), (3,), 2, seed=0)
    assert model.bias is None
    with pytest.raises(ConfigError, match="valid options: scale"):
        build_model(ModelConfig("tiny", {"size": 1}), (3,), 2, seed=0)
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny")(lambda input_shape, num_classes: nn.Identity())


def test_register_kwargs_factory_accepts_any_option(registry: None) -> None:
    @register_model("anything")
    def anything(input_shape: tuple[int, ...], num_classes: int, **options: object) -> nn.Module:
        assert options == {"depth": 3}
        return nn.Linear(input_shape[0], num_classes)

    build_model(ModelConfig("anything", {"depth": 3}), (3,), 2, seed=0)


# --------------------------------------------------------------------------- plugin mistakes


class _Unsqueezed(nn.Module):
    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)[:, :, None]


class _IntegerLogits(nn.Module):
    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).long()


def _factories() -> dict[str, tuple[Any, str]]:
    def raises(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        raise RuntimeError("model factory exploded")

    return {
        "raises": (raises, "raised RuntimeError: model factory exploded"),
        "int": (lambda shape, k: 42, "returned int; a model factory must return an nn.Module"),
        "wide": (
            lambda shape, k: nn.Linear(shape[0], k + 3),
            "outputs 5 values per example; the dataset has 2 classes",
        ),
        "unsqueezed": (
            lambda shape, k: _Unsqueezed(shape[0], k),
            "outputs shape (2, 2, 1) for a batch of 2 examples; it must output (2, 2)",
        ),
        "narrow_input": (
            lambda shape, k: nn.Linear(shape[0] + 1, k),
            "cannot run on a batch of the dataset's features, shape (2, 4): RuntimeError",
        ),
        "integer_logits": (
            lambda shape, k: _IntegerLogits(shape[0], k),
            "outputs torch.int64 values; it must output float logits",
        ),
    }


@pytest.mark.parametrize("case", sorted(_factories()))
def test_a_plugin_model_that_cannot_train_is_named_with_its_line(registry: None, case) -> None:
    # a wider output trained "completed"; the others were tracebacks from inside a run
    factory, fragment = _factories()[case]
    register_model(case)(factory)
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(case), (4,), 2, seed=0)
    assert err.value.key == "model.name" and fragment in err.value.message, err.value.message
    assert err.value.message.startswith(f"model {case!r} (tests/sim/test_models.py:")


def test_the_output_check_leaves_the_model_and_the_rng_as_they_were(registry: None) -> None:
    @register_model("bn_dropout")
    def bn_dropout(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        model = nn.Sequential(
            nn.Linear(input_shape[0], 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2)
        )
        model[2].eval()  # a module the factory left in eval mode stays so
        return model

    state = torch.get_rng_state()
    model = build_model(ModelConfig("bn_dropout"), (4,), 2, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert [m.training for m in model] == [True, True, False, True] and model.training
    assert torch.equal(model[1].running_mean, torch.zeros(8))  # no batch statistics taken
    assert int(model[1].num_batches_tracked) == 0
