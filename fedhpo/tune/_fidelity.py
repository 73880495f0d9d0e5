"""Full fidelity: a trial's parameters on the base config, as promotion and export run them."""

from __future__ import annotations

from typing import Any

from fedhpo.config import RunConfig


def full_config(base: RunConfig, params: dict[str, Any], seed: int | None = None) -> RunConfig:
    """The full-fidelity config of a trial's parameters (optionally with another seed).

    The low-fidelity settings of the space are not applied: this is the run the search was for.
    A tuned cohort setting replaces the base's other cohort setting instead of clashing.
    """
    values: dict[str, Any] = dict(params)
    if "federation.clients_per_round" in params:
        values["federation.client_fraction"] = None
    if "federation.client_fraction" in params:
        values["federation.clients_per_round"] = None
    if seed is not None:
        values["seed"] = seed
    return base.with_values(values)
