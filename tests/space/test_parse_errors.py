"""Every validation error of the fedhpo format names the file, line and key, and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedhpo.errors import SearchSpaceError
from fedhpo.space import load_space

P = "params:\n  client.lr: {type: float, low: 0.1, high: 1}\n"

ERRORS = [
    # (id, text, key, line, fragment)
    ("top-key", "parms: 1\n" + P, "parms", 1, "valid keys here: base, objective"),
    ("no-params", "objective: val_loss\n", "params", None, "missing `params`"),
    ("empty-params", "params: {}\n", "params", 1, "add at least one"),
    (
        "param-key",
        "params:\n  client.lr: {type: float, low: 0.1, high: 1, lo: 2}\n",
        "params.client.lr.lo",
        2,
        "valid keys here: type, low, high, log, step, when",
    ),
    (
        "cat-key",
        "params:\n  client.batch_size: {type: categorical, choices: [1], low: 2}\n",
        "params.client.batch_size.low",
        2,
        "valid keys here: type, choices, when",
    ),
    (
        "unknown-type",
        "params:\n  client.lr: {type: cate, choices: [1]}\n",
        "params.client.lr.type",
        2,
        "`categorical` here",
    ),
    (
        "missing-type",
        "params:\n  client.lr: {low: 1, high: 2}\n",
        "params.client.lr.type",
        2,
        "float, int or categorical",
    ),
    (
        "nested-params",
        "params:\n  client:\n    lr: {type: float, low: 0.1, high: 1}\n",
        "params.client.type",
        2,
        "e.g. `client.lr:`, not nested",
    ),
    (
        "missing-low",
        "params:\n  client.lr: {type: float, high: 2}\n",
        "params.client.lr",
        2,
        "needs `low`",
    ),
    (
        "unknown-path",
        "params:\n  client.lrr: {type: float, low: 0.1, high: 1}\n",
        "params.client.lrr",
        2,
        "valid keys here: lr, momentum",
    ),
    (
        "fs-path-in-fedhpo",
        "params:\n  train.optimizer.lr: {type: float, low: 0.1, high: 1}\n",
        "params.train.optimizer.lr",
        2,
        "is `client.lr` in fedhpo",
    ),
    (
        "section",
        "params:\n  client: {type: float, low: 0.1, high: 1}\n",
        "params.client",
        2,
        "is a section",
    ),
    (
        "low>=high",
        "params:\n  client.lr:\n    type: float\n    low: 1.0\n    high: 0.5\n",
        "params.client.lr.low",
        4,
        "swap them",
    ),
    (
        "log-low<=0",
        "params:\n  client.mu: {type: float, low: 0.0, high: 1.0, log: true}\n",
        "params.client.mu.low",
        2,
        "drop log: true",
    ),
    (
        "step-with-log",
        "params:\n  client.lr: {type: float, low: 0.1, high: 1.0, log: true, step: 0.1}\n",
        "params.client.lr.step",
        2,
        "remove one of them",
    ),
    (
        "empty-choices",
        "params:\n  client.batch_size: {type: categorical, choices: []}\n",
        "params.client.batch_size.choices",
        2,
        "list at least one value",
    ),
    (
        "dup-choices",
        "params:\n  client.batch_size: {type: categorical, choices: [16, 32, 16]}\n",
        "params.client.batch_size.choices",
        2,
        "remove the duplicate",
    ),
    (
        "parent-missing",
        P + "  client.mu: {type: float, low: 0, high: 1, when: {server.optimizer: adam}}\n",
        "params.client.mu.when.server.optimizer",
        3,
        "add it to params",
    ),
    (
        "numeric-never-greater",
        "params:\n  client.local_epochs: {type: int, low: 1, high: 4}\n"
        "  client.mu: {type: float, low: 0, high: 1, when: {client.local_epochs: {greater: 100}}}\n",
        "params.client.mu.when.client.local_epochs",
        3,
        "`client.local_epochs` is in [1, 4], so `greater 100` would never hold",
    ),
    (
        "numeric-never-in",
        "params:\n  client.local_epochs: {type: int, low: 1, high: 4}\n"
        "  client.mu: {type: float, low: 0, high: 1, when: {client.local_epochs: {in: [0, 9]}}}\n",
        "params.client.mu.when.client.local_epochs",
        3,
        "would never hold",
    ),
    (
        "numeric-choices-never-less",
        "params:\n  client.batch_size: [16, 32]\n"
        "  client.mu: {type: float, low: 0, high: 1, when: {client.batch_size: {less: 8}}}\n",
        "params.client.mu.when.client.batch_size",
        3,
        "would never hold",
    ),
    (
        "self-parent",
        "params:\n  client.lr: {type: float, low: 0.1, high: 1, when: {client.lr: {less: 0.5}}}\n",
        "params.client.lr.when.client.lr",
        2,
        "cannot depend on itself",
    ),
    (
        "unknown-op",
        "params:\n  server.optimizer: [sgd, adam]\n  server.beta1: {type: float, low: 0.8, high: 0.9, when: {server.optimizer: {eq: adam}}}\n",
        "params.server.beta1.when.server.optimizer.eq",
        3,
        "use one of: equal, not_equal, less, greater, in",
    ),
    (
        "bad-when",
        P + "  client.mu: {type: float, low: 0, high: 1, when: client.lr}\n",
        "params.client.mu.when",
        3,
        "e.g. when: {server.optimizer: adam}",
    ),
    (
        "in-not-list",
        "params:\n  server.optimizer: [sgd, adam]\n  server.beta1: {type: float, low: 0.8, high: 0.9, when: {server.optimizer: {in: adam}}}\n",
        "params.server.beta1.when.server.optimizer.in",
        3,
        "non-empty list",
    ),
    (
        "value-not-a-choice",
        "params:\n  server.optimizer: [sgd, adam]\n  server.beta1: {type: float, low: 0.8, high: 0.9, when: {server.optimizer: adm}}\n",
        "params.server.beta1.when.server.optimizer",
        3,
        "would never hold",
    ),
    (
        "less-on-strings",
        "params:\n  server.optimizer: [sgd, adam]\n  server.beta1: {type: float, low: 0.8, high: 0.9, when: {server.optimizer: {less: 1}}}\n",
        "params.server.beta1.when.server.optimizer",
        3,
        "use equal, not_equal or in",
    ),
    (
        "string-vs-number",
        P + "  client.mu: {type: float, low: 0, high: 1, when: {client.lr: fast}}\n",
        "params.client.mu.when.client.lr",
        3,
        "compare it with a number",
    ),
    (
        "cycle",
        "params:\n  client.lr: {type: float, low: 0.1, high: 1, when: {client.mu: {less: 0.5}}}\n  client.mu: {type: float, low: 0.1, high: 1, when: {client.lr: {greater: 0.5}}}\n",
        "params.client.lr.when",
        2,
        "cycle (client.lr -> client.mu -> client.lr)",
    ),
    (
        "float-on-int",
        "params:\n  client.local_epochs: {type: float, low: 1, high: 5}\n",
        "params.client.local_epochs.type",
        2,
        "use type: int",
    ),
    (
        "float-on-choice",
        "params:\n  server.optimizer: {type: float, low: 0, high: 1}\n",
        "params.server.optimizer.type",
        2,
        "use type: categorical",
    ),
    (
        "int-on-str",
        "params:\n  data.name: {type: int, low: 0, high: 1}\n",
        "params.data.name.type",
        2,
        "takes a string",
    ),
    (
        "choice-not-literal",
        "params:\n  data.partition.method: {type: categorical, choices: [iid, random]}\n",
        "params.data.partition.method.choices",
        2,
        "one of iid | dirichlet | shards | natural",
    ),
    (
        "choice-not-number",
        "params:\n  client.lr: {type: categorical, choices: [0.1, fast]}\n",
        "params.client.lr.choices",
        2,
        "takes a number",
    ),
    (
        "choice-not-int",
        "params:\n  client.batch_size: {type: categorical, choices: [16, 32.5]}\n",
        "params.client.batch_size.choices",
        2,
        "takes an integer",
    ),
    (
        "choice-null",
        "params:\n  client.batch_size: {type: categorical, choices: [16, null]}\n",
        "params.client.batch_size.choices",
        2,
        "null is not allowed",
    ),
    (
        "config-rejects-low",
        "params:\n  client.lr: {type: float, low: 0.0, high: 1.0}\n",
        "params.client.lr.low",
        2,
        "must be > 0",
    ),
    (
        "config-rejects-high",
        "params:\n  client.momentum: {type: float, low: 0.0, high: 1.0}\n",
        "params.client.momentum.high",
        2,
        "must be in [0, 1)",
    ),
    (
        "config-rejects-choice",
        "params:\n  client.batch_size: {type: categorical, choices: [0, 16]}\n",
        "params.client.batch_size.choices",
        2,
        "must be >= 1",
    ),
    (
        "unknown-metric",
        "objective: {metric: val_acc}\n" + P,
        "objective.metric",
        1,
        "use one of: val_accuracy, val_loss",
    ),
    (
        "bad-direction",
        "objective: {metric: val_loss, direction: up}\n" + P,
        "objective.direction",
        1,
        "maximize or minimize",
    ),
    (
        "objective-key",
        "objective: {metrc: val_loss}\n" + P,
        "objective.metrc",
        1,
        "valid keys here: metric, direction",
    ),
    (
        "objective-item",
        "objective:\n  - val_loss\n  - {metric: nope}\n" + P,
        "objective[1].metric",
        3,
        "unknown metric 'nope'",
    ),
    ("dup-objective", "objective: [val_loss, val_loss]\n" + P, "objective", 1, "listed twice"),
    (
        "unknown-sampler",
        "tuner: {sampler: tp}\n" + P,
        "tuner.sampler",
        1,
        "use one of: tpe, random, gp, cmaes, qmc, grid",
    ),
    (
        "unknown-pruner",
        "tuner: {pruner: asha}\n" + P,
        "tuner.pruner",
        1,
        "use one of: successive_halving, hyperband, median, none",
    ),
    (
        "tuner-key",
        "tuner: {trails: 3}\n" + P,
        "tuner.trails",
        1,
        "valid keys here: sampler, pruner, trials, budget, timeout, seed",
    ),
    ("bad-trials", "tuner: {trials: 0}\n" + P, "tuner.trials", 1, "integer >= 1"),
    ("negative-seed", "tuner: {seed: -1}\n" + P, "tuner.seed", 1, "must be an integer >= 0"),
    (
        "negative-seed-range",
        "params:\n  seed: {type: int, low: -5, high: 5}\n",
        "params.seed.low",
        2,
        "must be an integer >= 0",
    ),
    ("bad-timeout", "tuner: {timeout: -5}\n" + P, "tuner.timeout", 1, "number > 0 or null"),
    (
        "multi-pruned",
        "objective: [val_loss, bytes_sent]\ntuner: {pruner: hyperband}\n" + P,
        "tuner.pruner",
        2,
        "set pruner: none",
    ),
    (
        "multi-cmaes",
        "objective: [val_loss, bytes_sent]\ntuner: {sampler: cmaes}\n" + P,
        "tuner.sampler",
        2,
        "single objective",
    ),
    ("grid-no-step", "tuner: {sampler: grid}\n" + P, "params.client.lr.step", 3, "add e.g. step"),
    (
        "fidelity-key",
        "fidelity: {round: 3}\n" + P,
        "fidelity.round",
        1,
        "valid keys here: rounds, min_rounds, clients_per_round, client_fraction",
    ),
    ("fidelity-rounds", "fidelity: {rounds: 0}\n" + P, "fidelity.rounds", 1, "integer >= 1"),
    (
        "fidelity-past-the-full-run",
        "fidelity: {rounds: 50}\n" + P,
        "fidelity.rounds",
        1,
        "50 rounds is more than the full run's 30 (the base config's federation.rounds)",
    ),
    (
        "first-rung-past-the-full-run",
        "fidelity: {min_rounds: 40}\n" + P,
        "fidelity.min_rounds",
        1,
        "40 rounds is more than the full run's 30",
    ),
    (
        "fidelity-both",
        "fidelity: {clients_per_round: 3, client_fraction: 0.5}\n" + P,
        "fidelity.client_fraction",
        1,
        "not both",
    ),
    (
        "fidelity-vs-param",
        "fidelity: {rounds: 3}\nparams:\n  federation.rounds: {type: int, low: 1, high: 5}\n",
        "params.federation.rounds",
        3,
        "also fixed by fidelity.rounds",
    ),
    (
        "dup-path-key",
        "params:\n  client.lr: {type: float, low: 0.1, high: 1}\n  client.lr: {type: float, low: 0.1, high: 1}\n",
        "params.client.lr",
        3,
        "duplicate key",
    ),
    (
        # the fidelity's cohort key and the other cohort key as a param: every trial failed
        # ("give either clients_per_round or client_fraction, not both")
        "fidelity-cohort-vs-fraction-param",
        "fidelity: {clients_per_round: 3}\n"
        "params:\n  federation.client_fraction: {type: float, low: 0.1, high: 0.5}\n",
        "params.federation.client_fraction",
        3,
        "`federation.client_fraction` and fidelity.clients_per_round both set the cohort size "
        "(a run takes clients_per_round or client_fraction, not both); trials take the cohort "
        "from fidelity.clients_per_round, so this param would never change a trial: "
        "remove the param, or remove fidelity.clients_per_round to search the cohort at full "
        "fidelity",
    ),
    (
        "fidelity-fraction-vs-cohort-param",
        "fidelity: {client_fraction: 0.2}\n"
        "params:\n  federation.clients_per_round: {type: int, low: 2, high: 8}\n",
        "params.federation.clients_per_round",
        3,
        "`federation.clients_per_round` and fidelity.client_fraction both set the cohort size",
    ),
    (
        "report-every-past-the-run",
        "fidelity: {report_every: 100}\n" + P,
        "fidelity.report_every",
        1,
        "a trial reports to the pruner every 100 rounds but runs 30 (the base config's "
        "federation.rounds), so the pruner would only see the last round and never stop a "
        "trial; set report_every to at most 29, e.g. 1",
    ),
    (
        "report-every-past-the-fidelity-rounds",
        "fidelity: {rounds: 6, report_every: 6}\n" + P,
        "fidelity.report_every",
        1,
        "every 6 rounds but runs 6 (fidelity.rounds)",
    ),
    (
        "eval-every-past-the-run",
        "fidelity:\n  rounds: 6\n  eval_every: 10\n" + P,
        "fidelity.report_every",
        3,
        "set report_every to at most 5",
    ),
    (
        "int-bound-too-large",
        "params:\n  client.local_epochs: {type: int, low: 1, "
        "high: 100000000000000000000000000000}\n",
        "params.client.local_epochs.high",
        2,
        "must be at most 2147483647 (2**31 - 1), got 100000000000000000000000000000",
    ),
    (
        "int-bound-too-small",
        "params:\n  model.options.width: {type: int, low: -3000000000, high: 1}\n",
        "params.model.options.width.low",
        2,
        "must be at least -2147483647",
    ),
    (
        "never-on-the-int-step",
        "params:\n  client.local_epochs: {type: int, low: 1, high: 5, step: 2}\n"
        "  client.mu: {type: float, low: 0, high: 1, when: {client.local_epochs: 2}}\n",
        "params.client.mu.when.client.local_epochs",
        3,
        "`client.local_epochs` takes 1, 3, 5, so `equal 2` would never hold; "
        "compare it with one of those values",
    ),
    (
        "never-an-integer",
        "params:\n  client.local_epochs: {type: int, low: 1, high: 5}\n"
        "  client.mu: {type: float, low: 0, high: 1, when: {client.local_epochs: {equal: 2.5}}}\n",
        "params.client.mu.when.client.local_epochs",
        3,
        "`client.local_epochs` takes 1, 2, 3, 4, 5, so `equal 2.5` would never hold",
    ),
    (
        "never-on-a-long-int-step",
        "params:\n  client.batch_size: {type: int, low: 8, high: 128, step: 8}\n"
        "  client.mu: {type: float, low: 0, high: 1, when: {client.batch_size: {in: [10, 20]}}}\n",
        "params.client.mu.when.client.batch_size",
        3,
        "`client.batch_size` takes 8, 16, ..., 128 (steps of 8), so `in [10, 20]` would never hold",
    ),
    (
        "never-on-the-float-step",
        "params:\n  client.momentum: {type: float, low: 0.0, high: 0.9, step: 0.3}\n"
        "  client.mu: {type: float, low: 0, high: 1, when: {client.momentum: {equal: 0.5}}}\n",
        "params.client.mu.when.client.momentum",
        3,
        "`client.momentum` takes 0, 0.3, 0.6, 0.9, so `equal 0.5` would never hold",
    ),
    (
        "never-not-the-single-choice",
        "params:\n  server.optimizer: [adam]\n"
        "  server.beta1: {type: float, low: 0.8, high: 0.9, "
        "when: {server.optimizer: {not_equal: adam}}}\n",
        "params.server.beta1.when.server.optimizer",
        3,
        "`server.optimizer` has the single choice adam, so `not_equal adam` would never hold; "
        "remove the condition or add choices",
    ),
    (
        "never-between",
        "params:\n  client.momentum: {type: float, low: 0.0, high: 0.9}\n"
        "  client.mu: {type: float, low: 0, high: 1, "
        "when: {client.momentum: {greater: 0.5, less: 0.2}}}\n",
        "params.client.mu.when",
        3,
        "the condition `client.momentum > 0.5 and client.momentum < 0.2` never holds for any "
        "values its parents take (`client.momentum`: [0, 0.9]), so `client.mu` would never be "
        "searched; fix the condition or remove the param",
    ),
    (
        "never-all-and-any",
        "params:\n  client.lr: {type: float, low: 0.001, high: 1.0, log: true}\n"
        "  client.mu: {type: float, low: 0, high: 1, "
        "when: {client.lr: {greater: 0.5}, any: [{client.lr: {less: 0.01}}]}}\n",
        "params.client.mu.when",
        3,
        "the condition `client.lr > 0.5 and (client.lr < 0.01)` never holds for any values its "
        "parents take (`client.lr`: [0.001, 1])",
    ),
    (
        "never-with-the-parents-own-condition",
        "params:\n  server.optimizer: [sgd, adam]\n"
        "  server.momentum: {type: float, low: 0, high: 0.9, when: {server.optimizer: sgd}}\n"
        "  client.mu: {type: float, low: 0, high: 1, "
        "when: {server.optimizer: adam, server.momentum: {greater: 0.5}}}\n",
        "params.client.mu.when",
        4,
        "(`server.optimizer`: sgd | adam; `server.momentum`: [0, 0.9], when server.optimizer == "
        "'sgd')",
    ),
    (
        "not-equal-a-value-that-is-not-a-choice",
        "params:\n  server.optimizer: [sgd, adam]\n  server.beta1: {type: float, low: 0.8, "
        "high: 0.9, when: {server.optimizer: {not_equal: yogi}}}\n",
        "params.server.beta1.when.server.optimizer",
        3,
        "'yogi' is not one of `server.optimizer`'s choices (sgd | adam), so `not_equal yogi` "
        "would always hold; compare it with one of the choices or remove the condition",
    ),
    (
        "in-with-one-value-that-is-not-a-choice",
        "params:\n  server.optimizer: [sgd, adam]\n  server.beta1: {type: float, low: 0.8, "
        "high: 0.9, when: {server.optimizer: {in: [adam, yogi]}}}\n",
        "params.server.beta1.when.server.optimizer",
        3,
        "'yogi' is not one of `server.optimizer`'s choices (sgd | adam); "
        "remove it from the list or add it to the choices",
    ),
    ("missing-base", "base: nothere.yaml\n" + P, "base", 1, "file not found"),
    ("bad-base-type", "base: [1]\n" + P, "base", 1, "path of a run-config YAML"),
    ("not-a-mapping", "- 1\n- 2\n", None, None, "must be a YAML mapping"),
    ("malformed", "params: {client.lr: [\n", None, 2, "malformed YAML"),
]


@pytest.mark.parametrize(
    ("text", "key", "line", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors(write_space, text: str, key: str | None, line: int | None, fragment: str) -> None:
    path = write_space(text)
    with pytest.raises(SearchSpaceError) as info:
        load_space(path)
    error = info.value
    assert error.key == key
    assert error.line == line
    assert error.source == str(path)
    assert fragment in error.message
    where = f"{path}:{line}" if line else str(path)
    assert str(error).startswith(where)
    if key:
        assert f"`{key}`" in str(error)


def test_malformed_base_config_keeps_its_message(write_space, tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("client:\n  lr: -1\n")
    with pytest.raises(SearchSpaceError) as info:
        load_space(write_space("base: run.yaml\n" + P))
    assert (info.value.key, info.value.line) == ("base", 1)
    assert "run.yaml:2: `client.lr`: must be > 0, got -1" in info.value.message


def test_a_bad_base_override_is_blamed_on_the_flag_not_the_file(write_space, tmp_path) -> None:
    # `fedhpo space check s.yaml --base nonexist.yaml` said "s.yaml:1: `base`: ..."
    path = write_space("base: nothere.yaml\n" + P)
    with pytest.raises(SearchSpaceError) as info:
        load_space(path, base=str(tmp_path / "missing.yaml"))
    text = str(info.value)
    assert text.startswith("--base: ") and str(path) not in text
    assert "missing.yaml" in text and "file not found" in text and "give another --base" in text
