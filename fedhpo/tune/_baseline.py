"""The base config as a point of the search space, so every study measures where it started."""

from __future__ import annotations

from typing import Any

from fedhpo.space import SearchSpace
from fedhpo.store.records import ORIGIN

__all__ = ["ORIGIN", "base_point"]


def _lookup(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def base_point(space: SearchSpace) -> dict[str, Any] | None:
    """The base config's value of every active parameter, or None if one lies outside its
    domain (then the base config is not a point of this space)."""
    config = space.base.to_dict()
    values: dict[str, Any] = {}
    for param in space.params:
        if param.condition is not None and not param.condition.holds(values):
            continue
        found, value = _lookup(config, param.name)
        if not found or value is None:
            return None
        dist = param.distribution()
        try:
            inside = dist._contains(dist.to_internal_repr(value))
        except (ValueError, TypeError):
            inside = False
        if not inside:
            return None
        values[param.name] = value
    return values or None
