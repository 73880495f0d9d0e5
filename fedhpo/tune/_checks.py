"""Checks of a space against what will run it, made before a study is written."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fedhpo._yaml import load_yaml
from fedhpo.config import RunConfig, load_config
from fedhpo.errors import ConfigError, DataError, DataMissingError, FedhpoError, SearchSpaceError
from fedhpo.runs import check_run
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.datasets import check_options
from fedhpo.sim.evaluation import validation_sample
from fedhpo.sim.models import check_model_options, model_options, takes_any_option
from fedhpo.sim.names import REGISTRY_FIELDS, check_name, check_names
from fedhpo.sim.server import check_server_options, list_server_optimizers, server_settings
from fedhpo.space import (
    AnyCondition,
    CategoricalParam,
    Condition,
    FloatParam,
    Param,
    SearchSpace,
)
from fedhpo.tune._objective import cached_dataset


def _val_metric(space: SearchSpace) -> str | None:
    """The first objective on a validation metric (``val_*``), if any."""
    return next((o.metric for o in space.objectives if o.metric.startswith("val_")), None)


def _check_validation(space: SearchSpace, dataset: FederatedDataset | None) -> None:
    """An objective on validation metrics needs validation rows on the clients that validate
    (checked on the base config's data when it could be built here)."""
    metric = _val_metric(space)
    if metric is None:
        return
    if space.base.data.val_fraction == 0:
        raise SearchSpaceError(
            "objective needs validation data but the base config has data.val_fraction: 0; "
            "set data.val_fraction > 0 or optimize a test_* metric",
            key="objective",
            source=space.source,
        )
    if dataset is None:
        return  # not buildable here: `fedhpo tune` builds it next and says why
    config = space.config_for({})
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
        raise _in_base(space, exc) from None
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


def _in_base(space: SearchSpace, exc: FedhpoError) -> FedhpoError:
    """``exc``, about a key of the base config, located in the base config's file, at the
    key's line when it can be read. Left as it is when it names its own file (a data file)
    or when the file does not give the value it is about (``--set`` changed it, say): the
    file's line would point at another value."""
    if exc.source is not None:
        return exc
    if space.base_path is None:
        return exc.located(source=space.source)
    try:
        doc = load_yaml(space.base_path, ConfigError)
        from_file = load_config(space.base_path)
    except FedhpoError:
        return exc.located(source=str(space.base_path))
    if exc.key is not None and _value_at(from_file, exc.key) != _value_at(space.base, exc.key):
        return exc
    return exc.located(source=str(space.base_path), line=doc.line_of(exc.key))


def _value_at(config: RunConfig, key: str) -> Any:
    """The value at dotted ``key`` of ``config`` (None where there is none)."""
    value: Any = config.to_dict()
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_runnable(space: SearchSpace) -> None:
    """Raise a FedhpoError if ``space`` cannot run here: registry names (dataset, model,
    server optimizer) not registered (is a ``--plugin`` missing?); dataset, model or server
    optimizer options that the trials' dataset, model or optimizer does not take; a searched
    ``server.*`` setting no trial's optimizer reads; base data options the dataset refuses;
    no validation data; or a model or server optimizer that does not build and step on the
    base data (the base config's, each ``model.name`` and ``server.optimizer`` choice's, and
    with each kind of value a searched model or server option can take).

    Data whose files are not on this machine (a DataMissingError) leaves the checks that
    need it to whoever builds it; errors about the base config name its file and line."""
    _check_names(space)
    _check_data_options(space)
    for owner in OWNERS:
        _check_option_names(space, owner)
    _check_server_settings(space)
    dataset = _base_data(space)
    _check_validation(space, dataset)
    if dataset is None:
        return
    _check_builds(space, dataset)
    for owner in OWNERS:
        _check_option_values(space, owner, dataset)


def _base_data(space: SearchSpace) -> FederatedDataset | None:
    """The base config's data, built (and cached for the search); None if its files are not
    on this machine (a DataMissingError), which `fedhpo tune` says as it builds it next.
    Options the dataset refuses, files it cannot read and splits it cannot give are errors,
    in the base config unless they name a data file."""
    try:
        with warnings.catch_warnings():
            if _val_metric(space):
                # data without validation rows warns as it is built; _check_validation says more
                warnings.filterwarnings("ignore", "data.val_fraction .* gives no validation rows")
            return cached_dataset(space.base.data)
    except DataMissingError:
        return None
    except (ConfigError, DataError) as exc:
        raise _in_base(space, exc) from None


def _check_builds(space: SearchSpace, dataset: FederatedDataset) -> None:
    """The base config's model and server optimizer, and each searched ``model.name`` and
    ``server.optimizer`` choice, build on the base data and take a server step
    (:func:`fedhpo.runs.check_run`): a plugin's mistake is one error, not every trial's."""
    try:
        check_run(space.config_for({}), dataset)
    except ConfigError as exc:
        raise _in_base(space, exc) from None
    for owner in OWNERS:
        searched = _searched(space, owner.field)
        for choice in searched.choices if searched else ():
            try:
                check_run(space.config_for({owner.field: choice}), dataset)
            except ConfigError as exc:
                message = f"choice {choice!r}: {_said(exc, owner.field)}"
                raise _at(space, f"params.{owner.field}.choices", message) from None


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


@dataclass(frozen=True)
class _Owner:
    """What takes the options ``<section>.options.*``: the model or the server optimizer."""

    section: str  # "model"
    field: str  # the registry field naming it: "model.name"
    what: str  # "model"
    takes: Callable[[str], tuple[list[str], bool]]  # name -> (its options, takes any)
    check: Callable[[RunConfig], None]  # raises the ConfigError a run would on its options
    note: str = ""  # said after a built-in's options

    def name(self, config: RunConfig) -> str:
        return str(getattr(getattr(config, self.section), self.field.split(".")[1]))

    def options(self, config: RunConfig) -> dict[str, Any]:
        return dict(getattr(config, self.section).options)


OWNERS = (
    _Owner(
        "model",
        "model.name",
        "model",
        lambda name: (model_options(name), takes_any_option(name)),
        lambda config: check_model_options(config.model),
    ),
    _Owner(
        "server",
        "server.optimizer",
        "server optimizer",
        lambda name: ([], server_settings(name) is None),  # a plugin's takes any
        lambda config: check_server_options(config.server),
        note="; server.options is for a plugin's server optimizer",
    ),
)


def _searched(space: SearchSpace, name: str) -> CategoricalParam | None:
    """The categorical param searching ``name``, if any."""
    param = next((p for p in space.params if p.name == name), None)
    return param if isinstance(param, CategoricalParam) else None


def _applies(param: Param, field: str, value: Any) -> bool:
    """Whether ``param`` is surely active in a trial whose ``field`` is ``value`` (its
    condition judged on that alone: a comparison of another param counts as false), for
    checks that refuse what an active param gives; :func:`_may_apply` is the other side."""
    return param.condition is None or param.condition.holds({field: value})


def _option_params(space: SearchSpace, owner: _Owner) -> list[Param]:
    """The searched ``<section>.options.*`` params."""
    return [p for p in space.params if p.name.startswith(f"{owner.section}.options.")]


def _check_option_names(space: SearchSpace, owner: _Owner) -> None:
    """Each model (server optimizer) the trials can get takes the options they give it: the
    base config's, and the searched ``model.options.*`` (``server.options.*``) that can be
    active with it."""
    searched = _searched(space, owner.field)
    if searched is None:
        try:
            owner.check(space.base)  # the base config's options, as a run checks them
        except ConfigError as exc:
            raise _in_base(space, exc) from None
    given: dict[str, Param | None] = {}
    if searched is not None:
        given = dict.fromkeys(owner.options(space.base))
    given |= {p.name.split(".")[2]: p for p in _option_params(space, owner)}
    for name in searched.choices if searched else (owner.name(space.base),):
        valid, takes_any = owner.takes(name)
        for option, param in given.items():
            active = param is None or _applies(param, owner.field, name)
            if active and not takes_any and option not in valid:
                raise _option_error(space, owner, (name, valid), option, param)


def _option_error(
    space: SearchSpace,
    owner: _Owner,
    taker: tuple[str, list[str]],
    option: str,
    param: Param | None,
) -> SearchSpaceError:
    """The error for a model (server optimizer) named ``taker[0]``, whose options are
    ``taker[1]``, that a trial would give ``option``: from the base config (``param`` None)
    or searched by ``param``."""
    name, valid = taker
    its = (
        f"{owner.what} {name!r} takes no option {option!r} (its options: "
        f"{', '.join(valid) or 'none'}{owner.note})"
    )
    searched = _searched(space, owner.field)
    if searched is None and param is not None:
        return _at(
            space,
            f"params.{param.name}",
            f"{its}, which this space searches for it; remove params.{param.name}, or set "
            f"{owner.field} in the base config (or search it) to a {owner.what} that takes it",
        )
    choices = searched.choices if searched else (name,)
    fix = (
        f"which the base config gives it; remove {owner.section}.options.{option} from the "
        f"base config (each {owner.what} then uses its default)"
        if param is None
        else f"which this space searches for it; add when: {{{owner.field}: "
        f"{_taker(owner, choices, option)}}} to params.{param.name}"
    )
    key = f"params.{owner.field}.choices"
    return _at(space, key, f"choice {name!r}: {its}, {fix}, or drop the choice")


def _taker(owner: _Owner, names: tuple[Any, ...], option: str) -> str:
    """A name among ``names`` that takes ``option`` (for the advice), else the first one."""
    return next((n for n in names if option in owner.takes(n)[0] or owner.takes(n)[1]), names[0])


def _check_option_values(space: SearchSpace, owner: _Owner, dataset: FederatedDataset) -> None:
    """Each kind of value a searched ``model.options.*`` (``server.options.*``) param can
    take (:func:`_tried`) builds and steps (:func:`fedhpo.runs.check_run`) with each model
    (server optimizer) it can be active with, as its trials will."""
    searched = _searched(space, owner.field)
    for param in _option_params(space, owner):
        names: list[Any] = [None]
        if searched is not None:
            names = [n for n in searched.choices if _applies(param, owner.field, n)]
        for name, (field, value) in ((n, t) for n in names for t in _tried(param)):
            values = {param.name: value} if name is None else {owner.field: name, param.name: value}
            try:
                check_run(space.config_for(values), dataset)
            except ConfigError as exc:
                what = f"choice {value!r}" if field == "choices" else f"{field} {value!r}"
                what = f"a float param ({value!r})" if field == "type" else what
                what += f" ({owner.what} {name!r})" if name is not None else ""
                message = f"{what}: {_said(exc, owner.field)}"
                raise _at(space, f"params.{param.name}.{field}", message) from None


def _said(exc: FedhpoError, implied: str) -> str:
    """``exc``'s message after its key, unless that is ``implied`` by where it is said."""
    return exc.message if exc.key in (None, implied) else f"`{exc.key}`: {exc.message}"


_SERVER_SETTINGS = ("lr", "momentum", "beta1", "beta2", "tau")


def _check_server_settings(space: SearchSpace) -> None:
    """A searched ``server.<setting>`` is read by the server optimizer of a trial it can be
    active in: searching ``server.beta1`` on an sgd base changes no trial (sgd does not read
    it), a user's mistake (server.optimizer not set or not searched) and a wasted dimension."""
    searched = _searched(space, "server.optimizer")
    for param in space.params:
        section, _, setting = param.name.partition(".")
        if section != "server" or setting not in _SERVER_SETTINGS:
            continue
        names = [space.base.server.optimizer]
        if searched is not None:
            names = [n for n in searched.choices if _may_apply(param, "server.optimizer", n)]
        reads = [server_settings(n) for n in names]
        if not names or any(r is None or setting in r for r in reads):
            continue
        users = [n for n in list_server_optimizers() if setting in (server_settings(n) or ())]
        if len(names) == 1:
            uses = ", ".join(f"server.{r}" for r in reads[0] or ())
            what = f"server optimizer {names[0]!r} does not read {param.name} (it reads {uses})"
        else:
            what = f"none of the server optimizers it applies to ({', '.join(names)}) reads it"
        fix = (
            f"make it apply to a server.optimizer choice that reads it ({', '.join(users)})"
            if searched is not None
            else "set server.optimizer in the base config (or search it) to one that reads "
            f"it: {', '.join(users)}"
        )
        raise _at(
            space,
            f"params.{param.name}",
            f"{what}, so this param cannot change any trial; remove it, or {fix}",
        )


def _may_apply(param: Param, field: str, value: Any) -> bool:
    """Whether ``param`` can be active in a trial whose ``field`` is ``value`` (a comparison
    of another param in its condition counts as true: it may hold), for checks that refuse a
    param active nowhere; :func:`_applies` is the other side."""

    def may(condition: AnyCondition) -> bool:
        if isinstance(condition, Condition):
            return condition.parent != field or condition.holds({field: value})
        return type(condition).combine(may(c) for c in condition.conditions)

    return param.condition is None or may(param.condition)
