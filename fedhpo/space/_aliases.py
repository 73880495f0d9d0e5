"""FederatedScope config keys and the fedhpo run-config paths they map to."""

from __future__ import annotations

FS_ALIASES: dict[str, str | None] = {
    # client-side training
    "train.optimizer.lr": "client.lr",
    "optimizer.lr": "client.lr",
    "train.optimizer.momentum": "client.momentum",
    "optimizer.momentum": "client.momentum",
    "train.optimizer.weight_decay": "client.weight_decay",
    "optimizer.weight_decay": "client.weight_decay",
    "train.local_update_steps": "client.local_steps",
    "federate.local_update_steps": "client.local_steps",
    "dataloader.batch_size": "client.batch_size",
    "data.batch_size": "client.batch_size",
    "fedprox.mu": "client.mu",
    # server-side optimizer (FedOpt)
    "fedopt.optimizer.lr": "server.lr",
    "fedopt.lr_server": "server.lr",
    "fedopt.optimizer.momentum": "server.momentum",
    # federation
    "federate.sample_client_num": "federation.clients_per_round",
    "federate.sample_client_rate": "federation.client_fraction",
    "federate.total_round_num": "federation.rounds",
    # known, but no fedhpo equivalent
    "model.dropout": None,
    "model.hidden": None,
    "model.type": None,
    "model.layer": None,
    "train.optimizer.type": None,
    "fedopt.optimizer.type": None,
    "train.batch_or_epoch": None,
    "hpo.table.idx": None,
}
"""FederatedScope key -> fedhpo run-config path; ``None``: known key with no fedhpo equivalent.

FederatedScope's ``train.local_update_steps`` counts SGD steps (its default
``train.batch_or_epoch: batch``), hence ``client.local_steps``.
"""

_WHY_NOT = {
    "model.dropout": "fedhpo's models have no dropout",
    "model.hidden": "set the width in the base config (model.options.hidden) instead",
    "model.type": "pick the model in the base config (model.name) instead",
    "model.layer": "set the depth in the base config (model.options) instead",
    "train.optimizer.type": "fedhpo clients always use SGD (with momentum / weight decay)",
    "fedopt.optimizer.type": "tune server.optimizer (sgd | adam | yogi | adagrad) instead",
    "train.batch_or_epoch": "tune client.local_epochs or client.local_steps instead",
    "hpo.table.idx": "FedEx arm tables are not supported; list the values instead",
}


def why_unsupported(key: str) -> str:
    """A short reason why a FederatedScope key has no fedhpo equivalent."""
    return _WHY_NOT.get(key, "no fedhpo equivalent")
