"""The aggregation stage: weights by samples or uniform, staleness rules, transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedhpo.sim.aggregate import (
    Contributions,
    StalenessRule,
    aggregate,
    client_weights,
    staleness_factors,
)


def contrib(values, n, staleness=None) -> Contributions:
    k = len(values)
    return Contributions(
        deltas={"w": torch.tensor(values, dtype=torch.float32).view(k, 1)},
        num_samples=np.array(n, dtype=np.int64),
        staleness=np.zeros(k, dtype=np.int64) if staleness is None else np.array(staleness),
    )


def test_staleness_rules_by_hand() -> None:
    s = np.array([0, 1, 3, 8])
    assert staleness_factors(s, StalenessRule("constant")).tolist() == [1.0, 1.0, 1.0, 1.0]
    poly = staleness_factors(s, StalenessRule("polynomial", exponent=0.5))
    assert poly.tolist() == pytest.approx([1.0, 2**-0.5, 0.5, 1 / 3])
    hinge = staleness_factors(s, StalenessRule("hinge", exponent=2.0, offset=2))
    assert hinge.tolist() == pytest.approx([1.0, 1.0, 1 / 3, 1 / 13])


def test_samples_and_uniform_weighting() -> None:
    c = contrib([1.0, 4.0, 100.0], [1, 3, 0])  # the third client has no rows
    assert aggregate(c)["w"].item() == pytest.approx((1 + 12) / 4)
    assert aggregate(c, "uniform")["w"].item() == pytest.approx((1 + 4) / 2)


def test_stale_updates_shrink_the_step() -> None:
    c = contrib([2.0, 2.0], [1, 1], staleness=[0, 3])
    rule = StalenessRule("polynomial", exponent=1.0)
    weights, norm = client_weights(c, "samples", rule)
    assert weights.tolist() == [1.0, 0.25] and norm == 2.0
    assert aggregate(c, "samples", rule)["w"].item() == pytest.approx((2 + 0.5) / 2)
    assert aggregate(c, "uniform", rule)["w"].item() == pytest.approx((2 + 0.5) / 2)


def test_identical_deltas_average_to_themselves_exactly() -> None:
    value = 0.1234567
    c = contrib([value] * 5, [3, 17, 1, 60, 44], staleness=[0, 1, 2, 0, 5])
    assert aggregate(c)["w"].item() == torch.tensor(value).item()


def test_transforms_run_before_weighting() -> None:
    def clip_all(c: Contributions) -> Contributions:
        deltas = {k: d.clamp(-1, 1) for k, d in c.deltas.items()}
        return Contributions(deltas, c.num_samples, c.staleness)

    c = contrib([5.0, -0.5], [1, 1])
    assert aggregate(c, transforms=[clip_all])["w"].item() == pytest.approx(0.25)


def test_nothing_to_aggregate_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one update"):
        aggregate(contrib([1.0], [0]))
