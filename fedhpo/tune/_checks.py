"""Checks of a space against what will run it, made before a study is written."""

from __future__ import annotations

from fedhpo._yaml import load_yaml
from fedhpo.errors import ConfigError, SearchSpaceError
from fedhpo.sim.datasets import check_options
from fedhpo.sim.names import REGISTRY_FIELDS, check_name, check_names
from fedhpo.space import CategoricalParam, SearchSpace


def _check_validation(space: SearchSpace) -> None:
    needs_val = any(o.metric.startswith("val_") for o in space.objectives)
    if needs_val and space.base.data.val_fraction == 0:
        raise SearchSpaceError(
            "objective needs validation data but the base config has data.val_fraction: 0; "
            "set data.val_fraction > 0 or optimize a test_* metric",
            key="objective",
            source=space.source,
        )


def _check_names(space: SearchSpace) -> None:
    """The base config's registry names and every choice of a registry field."""
    try:
        check_names(space.config_for({}))
    except ConfigError as exc:
        where = str(space.base_path) if space.base_path else space.source
        raise exc.located(source=where) from None
    for param in space.params:
        if isinstance(param, CategoricalParam) and param.name in REGISTRY_FIELDS:
            for choice in param.choices:
                try:
                    check_name(param.name, choice)
                except ConfigError as exc:
                    key = f"params.{param.name}.choices"
                    raise _at(space, key, f"choice {choice!r}: {exc.message}") from None


def _at(space: SearchSpace, key: str, message: str) -> SearchSpaceError:
    """A SearchSpaceError at ``key`` of the space file, with its line when it can be read."""
    try:
        line = load_yaml(space.source, SearchSpaceError).line_of(key)
    except SearchSpaceError:
        line = None
    return SearchSpaceError(message, key=key, source=space.source, line=line)


def check_runnable(space: SearchSpace) -> None:
    """Raise a FedhpoError if ``space`` cannot run here: registry names (dataset, model,
    server optimizer) not registered (is a ``--plugin`` missing?), dataset options the
    dataset does not take, or no validation data."""
    _check_validation(space)
    _check_names(space)
    _check_data_options(space)


def _check_data_options(space: SearchSpace) -> None:
    """Every value a ``data.options.*`` parameter can take (its choices, or the ends of its
    range), as the dataset's builder will be given it (when the dataset is not searched)."""
    names = {p.name for p in space.params}
    if "data.name" in names:
        return
    for param in space.params:
        if not param.name.startswith("data.options."):
            continue
        if isinstance(param, CategoricalParam):
            tried = [("choices", v) for v in param.choices]
        else:
            tried = [("low", param.low), ("high", param.high)]
        for field, value in tried:
            try:
                check_options(space.config_for({param.name: value}).data)
            except ConfigError as exc:
                what = f"choice {value!r}: " if field == "choices" else ""
                raise _at(space, f"params.{param.name}.{field}", what + exc.message) from None
