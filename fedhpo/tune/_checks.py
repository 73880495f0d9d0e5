"""Checks of a space against what will run it, made before a study is written."""

from __future__ import annotations

import warnings
from typing import Any

from fedhpo._yaml import load_yaml
from fedhpo.errors import ConfigError, DataError, FedhpoError, SearchSpaceError
from fedhpo.runs import check_run
from fedhpo.sim.datasets import check_options
from fedhpo.sim.evaluation import validation_sample
from fedhpo.sim.models import model_options, takes_any_option
from fedhpo.sim.names import REGISTRY_FIELDS, check_name, check_names
from fedhpo.space import CategoricalParam, FloatParam, Param, SearchSpace
from fedhpo.tune._objective import cached_dataset


def _check_validation(space: SearchSpace) -> None:
    """An objective on validation metrics needs validation rows on the clients that validate
    (checked on the base config's data, built and cached for the search)."""
    metric = next((o.metric for o in space.objectives if o.metric.startswith("val_")), None)
    if metric is None:
        return
    if space.base.data.val_fraction == 0:
        raise SearchSpaceError(
            "objective needs validation data but the base config has data.val_fraction: 0; "
            "set data.val_fraction > 0 or optimize a test_* metric",
            key="objective",
            source=space.source,
        )
    config = space.config_for({})
    try:
        with warnings.catch_warnings():
            # data without validation rows warns as it is built; the error below says more
            warnings.filterwarnings("ignore", "data.val_fraction .* gives no validation rows")
            dataset = cached_dataset(config.data)
    except FedhpoError:
        return  # not buildable here: `fedhpo tune` builds it next and says why
    clients = validation_sample(config.seed, dataset.num_clients, config.federation.val_clients)
    if dataset.val_sizes[clients].any():
        return
    fraction = config.data.val_fraction
    if len(clients) < dataset.num_clients and dataset.val_sizes.any():
        why = (
            f"leaves none on the {len(clients)} client(s) that validate "
            "(federation.val_clients), only on others"
        )
    else:
        sizes = dataset.train_sizes + dataset.val_sizes
        why = (
            f"gives no validation rows: a client keeps round({fraction:g} x its rows) and the "
            f"largest of the {dataset.num_clients} clients has {int(sizes.max())} rows"
        )
    raise DataError(
        f"objective {metric} needs validation rows, but data.val_fraction {fraction:g} {why}; "
        "raise data.val_fraction or give clients more rows",
        key="data.val_fraction",
        source=str(space.base_path) if space.base_path else space.source,
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
    dataset does not take, model options a model does not take, no validation data, or a
    model or server optimizer that does not build and step on the base data."""
    _check_names(space)
    _check_data_options(space)
    _check_model_options(space)
    _check_validation(space)
    _check_builds(space)


def _check_builds(space: SearchSpace) -> None:
    """The base config's model and server optimizer, and each searched ``model.name`` and
    ``server.optimizer`` choice, build on the base data and take a server step
    (:func:`fedhpo.runs.check_run`): a plugin's mistake is one error, not every trial's."""
    try:
        dataset = cached_dataset(space.base.data)
    except FedhpoError:
        return  # not buildable here: `fedhpo tune` builds it next and says why
    configs = [space.config_for({})]
    for param in space.params:
        if param.name in ("model.name", "server.optimizer") and isinstance(param, CategoricalParam):
            configs += [space.config_for({param.name: choice}) for choice in param.choices]
    for config in configs:
        check_run(config, dataset)


def _tried(param: Param) -> list[tuple[str, Any]]:
    """(field, value) pairs to try on an option: the choices, or the ends of the range and,
    for a float param, a value between them off the whole numbers when it can take one."""
    if isinstance(param, CategoricalParam):
        return [("choices", v) for v in param.choices]
    tried: list[tuple[str, Any]] = [("low", param.low), ("high", param.high)]
    if isinstance(param, FloatParam) and param.low + (param.step or 0.5) <= param.high:
        tried.append(("type", param.low + (param.step or 0.5)))
    return tried


def _check_data_options(space: SearchSpace) -> None:
    """Every kind of value a ``data.options.*`` parameter can take (its choices, the ends of
    its range, a float between whole numbers), as the dataset's builder will be given it
    (when the dataset is not searched)."""
    names = {p.name for p in space.params}
    if "data.name" in names:
        return
    for param in space.params:
        if not param.name.startswith("data.options."):
            continue
        for field, value in _tried(param):
            try:
                check_options(space.config_for({param.name: value}).data)
            except ConfigError as exc:
                what = {"choices": f"choice {value!r}: ", "type": "a float param: "}
                fix = "; use type: int, or a categorical of ints" if field == "type" else ""
                message = what.get(field, "") + exc.message + fix
                raise _at(space, f"params.{param.name}.{field}", message) from None


def _check_model_options(space: SearchSpace) -> None:
    """Each ``model.name`` choice takes the model options its trials would get: the base
    config's, and the searched ``model.options.*`` that can be active with that choice."""
    searched = next((p for p in space.params if p.name == "model.name"), None)
    if not isinstance(searched, CategoricalParam):
        return
    for name in searched.choices:
        fixes = {
            o: f"which the base config gives it; remove model.options.{o} from the base config "
            "(each model then uses its default)"
            for o in space.base.model.options
        }
        for p in space.params:
            active = p.condition is None or p.condition.holds({"model.name": name})
            if p.name.startswith("model.options.") and active:
                o = p.name.split(".")[2]
                fixes[o] = (
                    f"which this space searches for it; add when: {{model.name: "
                    f"{_taker(searched.choices, o)}}} to params.{p.name}"
                )
        valid, takes_any = model_options(name), takes_any_option(name)
        for option, fix in fixes.items():
            if not takes_any and option not in valid:
                raise _at(
                    space,
                    "params.model.name.choices",
                    f"choice {name!r}: model {name!r} takes no option {option!r} (its options: "
                    f"{', '.join(valid) or 'none'}), {fix}, or drop the choice",
                )


def _taker(names: tuple[Any, ...], option: str) -> str:
    """A model among ``names`` that takes ``option`` (for the advice), else the first one."""
    return next((n for n in names if option in model_options(n)), names[0])
