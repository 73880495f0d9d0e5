"""The SearchSpace: params, objectives, fidelity, tuner and base config, validated as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedhpo.config import RunConfig, config_from_dict
from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.space._conditions import condition_from_dict
from fedhpo.space._params import CategoricalParam, FloatParam, IntParam, Param
from fedhpo.space._settings import Fidelity, Objective, TunerSpec
from fedhpo.space._validate import apply_values, check_space

FORMATS = ("fedhpo", "federatedscope", "grid")


@dataclass(frozen=True)
class SearchSpace:
    """What a study searches and how: validated as a whole on construction.

    ``params`` are kept in dependency order (a condition's parents come first). ``base`` is the
    run config every trial starts from; ``fidelity`` shrinks it; the sampled values go on top
    (:meth:`config_for`). ``renamed`` records FederatedScope keys that were mapped to fedhpo
    paths, as ``(original key, fedhpo path)`` pairs.
    """

    params: tuple[Param, ...]
    objectives: tuple[Objective, ...] = (Objective(),)
    fidelity: Fidelity = Fidelity()
    tuner: TunerSpec = TunerSpec()
    base: RunConfig = field(default_factory=RunConfig)
    base_path: Path | None = None
    source: str = "<memory>"
    format: str = "fedhpo"
    renamed: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise SearchSpaceError(f"format must be one of {', '.join(FORMATS)}", key="format")
        params, objectives, tuner = check_space(
            self.params, self.objectives, self.fidelity, self.tuner, self.base
        )
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "objectives", objectives)
        object.__setattr__(self, "tuner", tuner)
        object.__setattr__(self, "renamed", tuple(tuple(p) for p in self.renamed))

    @property
    def is_multi_objective(self) -> bool:
        """True if the study optimizes more than one metric."""
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        """Optuna directions, one per objective."""
        return [str(o.direction) for o in self.objectives]

    @property
    def names(self) -> list[str]:
        """Param names in dependency order."""
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        """The param called ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def config_for(self, values: Mapping[str, Any] | None = None) -> RunConfig:
        """The run config of a trial: base, then fidelity, then ``values`` (dotted paths).

        Raises :class:`~fedhpo.errors.ConfigError` if the config rejects a value.
        """
        return apply_values(self.base, {**self.fidelity.overrides(), **(values or {})})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (stored on a study); :meth:`from_dict` reads it back."""
        return {
            "format": self.format,
            "source": self.source,
            "base_path": None if self.base_path is None else str(self.base_path),
            "base": self.base.to_dict(),
            "objectives": [o.to_dict() for o in self.objectives],
            "fidelity": self.fidelity.to_dict(),
            "tuner": self.tuner.to_dict(),
            "params": [p.to_dict() for p in self.params],
            "renamed": [list(pair) for pair in self.renamed],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Rebuild (and revalidate) a space from :meth:`to_dict` output."""
        try:
            base = config_from_dict(data.get("base"), source="stored search space")
            return cls(
                params=tuple(param_from_dict(p) for p in data["params"]),
                objectives=tuple(Objective(**o) for o in data["objectives"]),
                fidelity=Fidelity(**data["fidelity"]),
                tuner=TunerSpec(**data["tuner"]),
                base=base,
                base_path=None if data.get("base_path") is None else Path(data["base_path"]),
                source=data.get("source", "<memory>"),
                format=data.get("format", "fedhpo"),
                renamed=tuple(tuple(p) for p in data.get("renamed", ())),
            )
        except ConfigError as exc:
            raise SearchSpaceError(f"stored base config is invalid: {exc}", key="base") from None
        except (KeyError, TypeError) as exc:
            raise SearchSpaceError(f"not a stored search space: {exc!r}") from None


def param_from_dict(data: Mapping[str, Any]) -> Param:
    """Inverse of ``to_dict`` on a param."""
    cond = data.get("condition")
    condition = None if cond is None else condition_from_dict(cond)
    kind = data.get("type")
    if kind == "categorical":
        return CategoricalParam(data["name"], tuple(data["choices"]), condition)
    if kind == "float":
        return FloatParam(
            data["name"], data["low"], data["high"], data["log"], data["step"], condition
        )
    if kind == "int":
        return IntParam(
            data["name"], data["low"], data["high"], data["log"], data["step"], condition
        )
    raise SearchSpaceError(f"unknown param type {kind!r}", key="type")
