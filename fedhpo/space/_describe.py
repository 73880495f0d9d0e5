"""A plain-data summary of a space, one row per param, for ``fedhpo space check``."""

from __future__ import annotations

from typing import Any

from fedhpo.space._params import CategoricalParam
from fedhpo.space._space import SearchSpace


def _base_value(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def describe(space: SearchSpace) -> list[dict[str, Any]]:
    """Rows with name, type, domain (range or choices), log, step, condition (text, "" if
    always active), base (the base config's value) and from (the original FederatedScope key,
    "" if none), in the order params are suggested."""
    base = space.base.to_dict()
    original = {path: key for key, path in space.renamed}
    rows = []
    for p in space.params:
        rows.append(
            {
                "name": p.name,
                "type": p.kind,
                "domain": p.domain(),
                "log": False if isinstance(p, CategoricalParam) else p.log,
                "step": None if isinstance(p, CategoricalParam) else p.step,
                "condition": "" if p.condition is None else str(p.condition),
                "base": _base_value(base, p.name),
                "from": original.get(p.name, ""),
            }
        )
    return rows
