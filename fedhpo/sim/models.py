"""Model registry: name -> factory of a ``torch.nn.Module``; built-ins logreg, mlp and cnn."""

from __future__ import annotations

import inspect
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

from fedhpo.config import ModelConfig
from fedhpo.errors import ConfigError
from fedhpo.plugins import calling, defined_at, qualname

ModelFactory = Callable[..., nn.Module]
"""``factory(input_shape: tuple[int, ...], num_classes: int, **options) -> nn.Module``."""

F = TypeVar("F", bound=ModelFactory)

_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering ``factory(input_shape, num_classes, **options)`` under ``name``.

    The factory's keyword parameters after the first two are the model's options (what
    ``model.options`` in a run config may set); a factory taking ``**kwargs`` accepts any.
    Registering a taken name raises ``ValueError``.
    """

    def decorator(factory: F) -> F:
        if name in _MODELS and _MODELS[name] is not factory:
            raise ValueError(
                f"a model named {name!r} is already registered ({qualname(_MODELS[name])}); "
                f"register {qualname(factory)} under another name"
            )
        _MODELS[name] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_MODELS)


def model_options(name: str) -> list[str]:
    """Option names the model ``name`` accepts (its factory's keyword parameters)."""
    return _option_names(_lookup(name))[0]


def takes_any_option(name: str) -> bool:
    """Whether model ``name``'s factory takes options beyond its named ones (``**kwargs``)."""
    return _option_names(_lookup(name))[1]


def check_model_options(cfg: ModelConfig) -> None:
    """Raise :class:`~fedhpo.errors.ConfigError` listing the valid ones if the model
    ``cfg.name`` does not take an option of ``cfg.options`` (their names only)."""
    valid, accepts_any = _option_names(_lookup(cfg.name))
    for key in cfg.options:
        if not accepts_any and key not in valid:
            listing = ", ".join(valid) if valid else "none"
            raise ConfigError(
                f"unknown option for model {cfg.name!r}; valid options: {listing}",
                key=f"model.options.{key}",
            )


def build_model(
    cfg: ModelConfig, input_shape: Sequence[int], num_classes: int, seed: int
) -> nn.Module:
    """Build the model ``cfg`` names, with PyTorch's default init drawn from ``seed``.

    The global RNG is forked, so it is left exactly as it was. Unknown names or options raise
    :class:`~fedhpo.errors.ConfigError` listing the valid ones; so does a factory that raises,
    returns no ``nn.Module``, or one that does not map a batch of ``input_shape`` features
    to float logits of shape ``(batch, num_classes)`` (run once on zeros to check).
    """
    check_model_options(cfg)
    factory = _lookup(cfg.name)
    shape = tuple(int(d) for d in input_shape)
    what = f"model {cfg.name!r}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with calling(what, factory, key="model.name"):
            model = factory(shape, int(num_classes), **cfg.options)
        what += f" ({defined_at(factory)})"
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"{what} returned {type(model).__name__}; a model factory must return an nn.Module",
                key="model.name",
            )
        _check_output(model, what, shape, int(num_classes))  # inside the fork: draws no RNG
    return model


def _check_output(model: nn.Module, what: str, shape: tuple[int, ...], num_classes: int) -> None:
    """Raise ConfigError unless ``model`` maps 2 examples of zeros to (2, num_classes) float
    logits. Run without gradients in eval mode (no batch statistics are taken), then each
    module's mode is put back."""
    x = torch.zeros(2, *shape)
    modes = {m: m.training for m in model.modules()}
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:
        raise ConfigError(
            f"{what} cannot run on a batch of the dataset's features, shape {tuple(x.shape)}: "
            f"{type(exc).__name__}: {exc}; it must take inputs of shape (batch, "
            f"{', '.join(map(str, shape))})",
            key="model.name",
        ) from None
    finally:
        for module, training in modes.items():
            module.training = training
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        got = f"{out.dtype} values" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{what} outputs {got}; it must output float logits", key="model.name")
    if out.ndim == 2 and len(out) == 2 and out.shape[1] != num_classes:
        width = f"{out.shape[1]} value" + ("s" if out.shape[1] != 1 else "")
        raise ConfigError(
            f"{what} outputs {width} per example; the dataset has {num_classes} classes: its "
            "last layer must output num_classes",
            key="model.name",
        )
    if out.shape != (2, num_classes):
        raise ConfigError(
            f"{what} outputs shape {tuple(out.shape)} for a batch of 2 examples; it must "
            f"output (2, {num_classes}): (batch, num_classes)",
            key="model.name",
        )


def _lookup(name: str) -> ModelFactory:
    if name not in _MODELS:
        raise ConfigError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())} "
            "(a --plugin MODULE can register more)",
            key="model.name",
        )
    return _MODELS[name]


def _option_names(factory: ModelFactory) -> tuple[list[str], bool]:
    """(keyword option names, whether the factory also takes ``**kwargs``)."""
    params = list(inspect.signature(factory).parameters.values())[2:]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in params if p.kind in kinds]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


# --------------------------------------------------------------------------- built-ins


@register_model("logreg")
def logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Multinomial logistic regression: flatten, one linear layer."""
    return nn.Sequential(
        OrderedDict(flatten=nn.Flatten(), linear=nn.Linear(math.prod(input_shape), num_classes))
    )


MAX_PARAMETERS = 1_000_000_000
"""The largest built-in model (mlp) built: a billion float32 parameters are 4 GB."""


@register_model("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (64,)) -> nn.Module:
    """Flatten, then Linear + ReLU per ``hidden`` width, then a linear output layer."""
    ok = isinstance(hidden, (list, tuple)) and all(
        isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
    )
    if not ok:
        raise ConfigError(
            f"must be a list of positive integers, e.g. [64, 32], got {hidden!r}",
            key="model.options.hidden",
        )
    widths = [math.prod(input_shape), *hidden, num_classes]
    size = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    if size > MAX_PARAMETERS:
        raise ConfigError(
            f"{hidden!r} gives an mlp of {size:,} parameters (at most {MAX_PARAMETERS:,}, "
            "4 GB as float32, before each client's copy); give narrower layers",
            key="model.options.hidden",
        )
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = math.prod(input_shape)
    for i, h in enumerate(hidden):
        layers[f"fc{i}"] = nn.Linear(width, h)
        layers[f"relu{i}"] = nn.ReLU()
        width = h
    layers["out"] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)


@register_model("cnn")
def cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The FedAvg / LEAF CNN: two 5x5 'same' convs (32, 64 channels) with 2x2 max-pooling,
    a 512-unit ReLU layer and a linear output; built for (1, 28, 28), any (C, H>=4, W>=4) works.
    """
    if len(input_shape) != 3 or min(input_shape[1:]) < 4:
        raise ConfigError(
            f"model 'cnn' needs image input (channels, height, width) with height and width "
            f">= 4, got shape {input_shape}; use 'mlp' or 'logreg' for flat features",
            key="model.name",
        )
    channels, height, width = input_shape
    flat = 64 * (height // 2 // 2) * (width // 2 // 2)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(channels, 32, kernel_size=5, padding=2),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(32, 64, kernel_size=5, padding=2),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc=nn.Linear(flat, 512),
            relu3=nn.ReLU(),
            out=nn.Linear(512, num_classes),
        )
    )
