"""Evaluation of the global model: a fixed validation sample, the test set, per-client scores.

Global evaluation only for now; per-client and personalized evaluation (fine-tuning each
client before scoring it) would be further methods of :class:`Evaluator`.

Validation runs after every server update, so its cost must not grow with the federation:
unless ``federation.val_clients`` says otherwise, a federation of more than
:data:`LARGE_FEDERATION` clients validates on a fixed random sample of that many clients
(chosen once per run from the training seed), smaller ones on all their clients.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor, nn

from fedhpo.sim.client import EvalResult, evaluate, evaluate_each
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.sampling import validation_clients

__all__ = ["LARGE_FEDERATION", "Evaluator", "client_accuracies", "validation_sample"]

LARGE_FEDERATION = 1000
"""Most clients validating by default; larger federations validate on a fixed sample."""


def validation_sample(seed: int, num_clients: int, count: int | None) -> np.ndarray:
    """The fixed clients whose validation rows score every server update (sorted ids)."""
    if count is None and num_clients > LARGE_FEDERATION:
        count = LARGE_FEDERATION
    return validation_clients(seed, num_clients, count)


class Evaluator:
    """Scores parameters on the validation rows of fixed clients (pooled once) and the test
    set; ``model`` is only a skeleton for ``functional_call``."""

    def __init__(
        self, model: nn.Module, dataset: FederatedDataset, seed: int, val_clients: int | None
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.val_ids = validation_sample(seed, dataset.num_clients, val_clients)
        self.val_x, self.val_y = dataset.val_rows(self.val_ids)

    def validate(self, params: Mapping[str, Tensor]) -> EvalResult:
        """Pooled validation loss and accuracy over the validation clients' rows."""
        return evaluate(self.model, params, self.val_x, self.val_y)

    def test(self, params: Mapping[str, Tensor]) -> EvalResult:
        """Loss and accuracy on the global test set."""
        return evaluate(self.model, params, self.dataset.test_x, self.dataset.test_y)

    def client_accuracies(self, params: Mapping[str, Tensor]) -> tuple[float, ...]:
        """Validation accuracy of each validation client that has validation rows."""
        return client_accuracies(self.model, self.dataset, self.val_ids, params)


def client_accuracies(
    model: nn.Module, dataset: FederatedDataset, clients: np.ndarray, params: Mapping[str, Tensor]
) -> tuple[float, ...]:
    """Validation accuracy of each of ``clients`` that has validation rows."""
    rows = (dataset.client_val(c) for c in clients.tolist())
    return tuple(
        r.accuracy for r in evaluate_each(model, params, (xy for xy in rows if len(xy[1])))
    )
