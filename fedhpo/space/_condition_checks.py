"""Conditions are sound: parents exist and fit the comparisons, each can hold, no cycles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fedhpo.errors import SearchSpaceError
from fedhpo.space._conditions import AnyCondition, Condition, is_number
from fedhpo.space._domains import ancestors, can_hold, constants, representatives, values_text
from fedhpo.space._params import CategoricalParam, Param, choice_key


def _err(key: str, message: str) -> SearchSpaceError:
    return SearchSpaceError(message, key=key)


def _pkey(name: str) -> str:
    return f"params.{name}"


def _shown(leaf: Condition) -> str:
    return f"{leaf.op} {list(leaf.value) if leaf.op == 'in' else leaf.value}"


def _check_choice_leaf(leaf: Condition, parent: CategoricalParam, key: str) -> None:
    name, domain = parent.name, parent.domain()
    if leaf.op in ("less", "greater"):
        if not all(is_number(c) for c in parent.choices):
            raise _err(
                key,
                f"`{leaf.op}` needs a numeric parent, but `{name}` has choices "
                f"{domain}; use equal, not_equal or in",
            )
        if not any(leaf.holds({name: c}) for c in parent.choices):
            raise _err(
                key,
                f"no choice of `{name}` ({domain}) is {leaf.op} than "
                f"{leaf.value!r}, so the condition would never hold",
            )
        return
    known = {choice_key(c) for c in parent.choices}
    values = leaf.value if leaf.op == "in" else (leaf.value,)
    missing = [v for v in values if choice_key(v) not in known]
    if missing and leaf.op == "not_equal":
        raise _err(
            key,
            f"{leaf.value!r} is not one of `{name}`'s choices ({domain}), so `{_shown(leaf)}` "
            "would always hold; compare it with one of the choices or remove the condition",
        )
    if missing and len(missing) < len(values):
        raise _err(
            key,
            f"{missing[0]!r} is not one of `{name}`'s choices ({domain}); "
            "remove it from the list or add it to the choices",
        )
    if missing:
        raise _err(
            key,
            f"{missing[0]!r} is not one of `{name}`'s choices ({domain}); "
            "the condition would never hold",
        )
    if not any(leaf.holds({name: c}) for c in parent.choices):  # not_equal the only choice
        raise _err(
            key,
            f"`{name}` has the single choice {domain}, so `{_shown(leaf)}` would never hold; "
            "remove the condition or add choices",
        )


def _check_leaf(leaf: Condition, child: str, params: Mapping[str, Param]) -> None:
    key = f"{_pkey(child)}.when.{leaf.parent}"
    parent = params.get(leaf.parent)
    if leaf.parent == child:
        raise _err(key, f"`{child}` cannot depend on itself; remove this condition")
    if parent is None:
        raise _err(
            key,
            f"`{leaf.parent}` is not a param of this space, so the condition can never hold; "
            f"add it to params or use one of: {', '.join(params)}",
        )
    if isinstance(parent, CategoricalParam):
        _check_choice_leaf(leaf, parent, key)
        return
    values = leaf.value if leaf.op == "in" else (leaf.value,)
    for v in values:
        if not is_number(v):
            raise _err(key, f"`{parent.name}` is numeric; compare it with a number, not {v!r}")
    if not _can_hold(leaf, parent.low, parent.high):
        raise _err(
            key,
            f"`{parent.name}` is in [{parent.low:g}, {parent.high:g}], so `{_shown(leaf)}` "
            "would never hold; compare it with a value in its range",
        )
    cuts = constants([leaf]).get(parent.name, set())
    if not any(leaf.holds({parent.name: v}) for v in representatives(parent, cuts)):
        raise _err(
            key,
            f"`{parent.name}` takes {values_text(parent)}, so `{_shown(leaf)}` would never "
            "hold; compare it with one of those values",
        )


def _can_hold(leaf: Condition, low: float, high: float) -> bool:
    """Whether a parent ranging over [low, high] can satisfy ``leaf`` (a numeric op)."""
    if leaf.op == "greater":
        return bool(high > leaf.value)
    if leaf.op == "less":
        return bool(low < leaf.value)
    if leaf.op == "equal":
        return bool(low <= leaf.value <= high)
    if leaf.op == "in":
        return any(low <= v <= high for v in leaf.value)
    return not low == high == leaf.value  # not_equal


def _check_together(params: Sequence[Param]) -> None:
    """Each condition must hold for some values its parents take together (each parent
    active only when its own condition holds); ``params`` in dependency order."""
    by_name = {p.name: p for p in params}
    for p in params:
        if p.condition is None or can_hold(p.condition, params) is not False:
            continue
        parents = sorted(ancestors(p.condition, by_name), key=list(by_name).index)
        domains = "; ".join(
            f"`{n}`: {by_name[n].domain()}"
            + ("" if by_name[n].condition is None else f", when {by_name[n].condition}")
            for n in parents
        )
        raise _err(
            f"{_pkey(p.name)}.when",
            f"the condition `{p.condition}` never holds for any values its parents take "
            f"({domains}), so `{p.name}` would never be searched; fix the condition or "
            "remove the param",
        )


def _cycle(pending: list[Param]) -> list[str]:
    by_name = {p.name: p for p in pending}
    path = [pending[0].name]
    while True:
        cond = by_name[path[-1]].condition
        assert cond is not None
        nxt = sorted(n for n in cond.parents if n in by_name)[0]
        if nxt in path:
            return path[path.index(nxt) :] + [nxt]
        path.append(nxt)


def _order(params: Sequence[Param]) -> tuple[Param, ...]:
    """Parents before children, otherwise in the given order; cycles are errors."""
    done: set[str] = set()
    out: list[Param] = []
    pending = list(params)
    while pending:
        waiting = []
        for p in pending:
            if p.condition is None or p.condition.parents <= done:
                out.append(p)
                done.add(p.name)
            else:
                waiting.append(p)
        if len(waiting) == len(pending):
            cycle = _cycle(pending)
            raise _err(
                f"{_pkey(cycle[0])}.when",
                f"conditions form a cycle ({' -> '.join(cycle)}); "
                "a param can only depend on params that do not depend on it",
            )
        pending = waiting
    return tuple(out)


def check_conditions(params: Sequence[Param]) -> tuple[Param, ...]:
    """Check every condition of ``params``; return them parents first."""
    by_name = {p.name: p for p in params}
    for p in params:
        cond: AnyCondition | None = p.condition
        if cond is not None:
            for leaf in cond.leaves():
                _check_leaf(leaf, p.name, by_name)
    ordered = _order(params)
    _check_together(ordered)
    return ordered
