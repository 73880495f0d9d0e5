"""Compute budgets, counted in client local SGD steps: what a search may spend and has spent
(the limit itself is shared by all workers through the study's budget, ``store._budget``).

One full-run equivalent is the steps of one full-fidelity run of the base config, so "a
budget of 10" means the compute of ten full runs, however it is split into short trials,
pruned trials, calibration and promotion re-runs.

A budget stops new trials from starting and, through :class:`BudgetGuard`, stops the
trials that are running when it is spent: a budget of 6 is 6 full runs, with one job or
many, not 6 plus whatever the jobs were running at the time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import optuna

from fedhpo.config import FedBuffConfig, RunConfig, SystemsConfig
from fedhpo.errors import FedhpoError
from fedhpo.sim.clock import SystemsClock
from fedhpo.sim.data import FederatedDataset
from fedhpo.sim.models import build_model
from fedhpo.sim.sampling import sample_cohort
from fedhpo.sim.work import steps_for
from fedhpo.space import SearchSpace
from fedhpo.store import records as rec
from fedhpo.store.budget import load_budget
from fedhpo.tune._calibrate import design
from fedhpo.tune._fidelity import full_config

EXACT_ROUNDS = 2048
"""Synchronous rounds whose cohorts are drawn one by one; later rounds count at their
expected steps (a cohort of ``k`` of ``N`` clients trains each client ``k / N`` times)."""
_COHORT_ENTRIES = 1 << 21
"""At most this many cohort members are kept per (seed, clients, cohort size): the exact
rounds are fewer than :data:`EXACT_ROUNDS` for cohorts above 1,024 clients."""


def run_steps(config: RunConfig, dataset: FederatedDataset) -> int:
    """Client local steps a run of ``config`` takes if it completes (no run needed).

    Synchronous rounds: each round's cohort (``sample_cohort``) trains its local steps, exact
    for the first :data:`EXACT_ROUNDS` rounds; later rounds count at their expected steps
    (within a percent of a real run's total for runs of thousands of rounds). Where clients
    may not all train in full (dropout, availability windows, a deadline, over-selection) or
    the run may stop early (``federation.time_budget``), the rounds are played on the run's
    clock without training (:func:`_barrier_steps`), exact as well.

    Asynchronous (FedBuff) runs: an estimate, within about 10% of a real run's steps on runs
    of tens of client updates and 5% on hundreds (tests/tune/test_run_steps.py). A run
    trains every update it dispatches before its last server update (but those that drop
    out): the first dispatch (its clients and dropout exactly), then one refill per update
    that arrives or drops out, until ``rounds * buffer_size`` updates have arrived (updates
    cut for ``max_staleness`` are trained but do not count towards the buffer: how many, a
    rougher estimate, within about 25% of real runs). Which idle
    client a refill picks depends on which are still out, so the clock: the estimate takes
    the stationary mix of a pool of ``concurrency`` slots, where a client with round trip
    ``T`` (its steps at its speed, plus transfers) is sent at a rate proportional to
    ``1 / (1 + kappa * T)`` (``kappa`` such that ``concurrency`` clients are out on average).
    A run the clock ends earlier (``federation.time_budget``) is counted to its last update:
    the counted updates arrive at that mix's rate (within 5% of real runs on 24 configs of
    searchspaces/async_fedbuff.yaml, whose runs stop at 20 simulated seconds; counting every
    round instead, as until 2026-12-08, gave 1.3 to 230 times their steps).
    """
    dataset = dataset.at_fraction(config.data.fraction)
    hp = config.client
    per_client = steps_for(dataset.train_sizes, hp.batch_size, hp.local_epochs, hp.local_steps)
    if config.federation.mode == "async":
        return _async_steps(config, dataset, per_client)
    if _uneven(config):
        return _barrier_steps(config, dataset, per_client)
    fed, num_clients = config.federation, dataset.num_clients
    size = fed.cohort_size(num_clients)
    cohorts = _cohorts(config.seed, num_clients, size)
    exact = min(fed.rounds, cohorts.limit)
    steps = int(per_client @ cohorts.counts(exact))
    rest = fed.rounds - exact
    if rest > 0:  # exact rational arithmetic: rounds may be as large as the config allows
        steps += round(Fraction(rest * size * int(per_client.sum()), num_clients))
    return steps


def _uneven(config: RunConfig) -> bool:
    """Whether some dispatched clients of a synchronous run may train less than their steps,
    or not at all, or the run may end before its last round (dropout, availability windows,
    a deadline, over-selection, a simulated-time budget)."""
    fed, systems = config.federation, config.systems
    return (
        fed.deadline is not None
        or fed.over_selection > 0
        or fed.time_budget is not None
        or systems.dropout > 0
        or systems.window_period is not None
    )


def _barrier_steps(config: RunConfig, dataset: FederatedDataset, per_client: np.ndarray) -> int:
    """:func:`run_steps` of a synchronous run whose clients may not all train in full: the
    rounds of ``fedhpo.sim.schedules.Barrier`` on the run's clock, without training.

    A round dispatches ``ceil((1 + over_selection) * cohort)`` clients (with ``stragglers:
    partial``, each for the steps that fit before the deadline) and closes when ``cohort``
    updates are in, at the deadline, or when every client has reported or dropped out; the
    clients that reported by then trained (the others were cut, or dropped out, and trained
    nothing), and the next round starts then. Exact for the first :data:`EXACT_ROUNDS` rounds
    (stopping where ``federation.time_budget`` stops the run); later rounds count at the
    mean steps of those."""
    fed, hp, systems = config.federation, config.client, config.systems
    n_clients = dataset.num_clients
    target = fed.cohort_size(n_clients)
    size = fed.dispatch_size(target, n_clients)
    limit = fed.deadline if fed.stragglers == "partial" else None
    clock = SystemsClock(systems, n_clients, _model_bytes(config, dataset), config.seed)
    cohorts = _cohorts(config.seed, n_clients, size)  # sample_idle with nobody busy
    rounds = min(fed.rounds, cohorts.limit)
    cohorts.counts(rounds)  # draws the cohorts
    batch = np.full(size, hp.batch_size)
    table = None
    if systems.window_period is None:  # drops depend on the round only
        table = _drop_table(systems, config.seed, n_clients, size, rounds)
    t, total = 0.0, 0
    for r in range(1, rounds + 1):
        clients = cohorts.members[r - 1]
        steps = per_client[clients]
        profile = clock.profile(clients, batch, r)
        if limit is not None:
            fit = profile.steps_within(limit)
            steps = np.where(fit >= 1, np.minimum(steps, fit), steps)
        arrival = profile.arrival(t, steps)
        dropped = table[r - 1] if table is not None else clock.drops(clients, t, arrival, r)
        trained, t = _barrier_round(arrival, dropped, target, t, fed.deadline)
        total += int(steps[trained].sum())
        if fed.time_budget is not None and t >= fed.time_budget:
            return total
    if fed.rounds > rounds:
        total += round(Fraction(total * (fed.rounds - rounds), rounds))
    return total


def _barrier_round(
    arrival: np.ndarray, dropped: np.ndarray, target: int, start: float, deadline: float | None
) -> tuple[np.ndarray, float]:
    """Which dispatches of a round trained (a bool mask) and when the round closed: events
    in the queue's order (arrival time, then dispatch order) until ``target`` updates are
    in, the deadline passes (at ``start + deadline``) or none is left."""
    order = np.lexsort((np.arange(len(arrival)), arrival))
    times, reported = arrival[order], ~dropped[order]
    end = math.inf if deadline is None else start + deadline
    due = int(np.searchsorted(times, end, side="right"))  # events up to the deadline
    count = np.cumsum(reported[:due])
    enough = int(np.searchsorted(count, target))  # the event that brings the target in
    if enough < due:
        last, close = enough + 1, float(times[enough])
    elif due < len(times):
        last, close = due, end
    else:
        last, close = due, float(times[-1]) if len(times) else start
    trained = np.zeros(len(arrival), dtype=bool)
    trained[order[:last][reported[:last]]] = True
    return trained, close


@functools.lru_cache(maxsize=16)
def _drop_table(
    systems: SystemsConfig, seed: int, n_clients: int, size: int, rounds: int
) -> np.ndarray:
    """Which dispatch of each of ``rounds`` rounds drops out (without availability windows
    the draws depend on the round only), shared by every config of a space."""
    clock = SystemsClock(systems, n_clients, 0, seed)
    dispatch = np.arange(size)
    table = np.stack(
        [clock.drops(dispatch, 0.0, np.zeros(size), r) for r in range(1, rounds + 1)]
    ).reshape(rounds, size)
    table.setflags(write=False)
    return table


class _Cohorts:
    """The cohorts of rounds 1, 2, ... of one (seed, clients, cohort size), drawn once each
    as far as asked (up to ``limit`` rounds)."""

    def __init__(self, seed: int, num_clients: int, size: int) -> None:
        self.seed, self.num_clients, self.size = seed, num_clients, size
        self.limit = max(1, min(EXACT_ROUNDS, _COHORT_ENTRIES // size))
        self.members = np.empty((0, size), dtype=np.int64)

    def counts(self, rounds: int) -> np.ndarray:
        """How many of rounds ``1..rounds`` (at most ``limit``) each client trains in."""
        rounds = min(rounds, self.limit)
        drawn = len(self.members)
        if rounds > drawn:
            more = [
                sample_cohort(self.seed, r, self.num_clients, self.size)
                for r in range(drawn + 1, rounds + 1)
            ]
            self.members = np.concatenate([self.members, np.stack(more)])
        return np.bincount(self.members[:rounds].ravel(), minlength=self.num_clients)


@functools.lru_cache(maxsize=16)
def _cohorts(seed: int, num_clients: int, size: int) -> _Cohorts:
    return _Cohorts(seed, num_clients, size)


def _async_steps(config: RunConfig, dataset: FederatedDataset, per_client: np.ndarray) -> int:
    """:func:`run_steps` of a FedBuff run (see there)."""
    fed, buff, systems = config.federation, config.fedbuff, config.systems
    n_clients = dataset.num_clients
    slots = min(buff.concurrency or fed.cohort_size(n_clients), n_clients)
    clock = SystemsClock(systems, n_clients, _model_bytes(config, dataset), config.seed)
    everyone = np.arange(n_clients)
    profile = clock.profile(everyone, np.full(n_clients, config.client.batch_size), 0)
    trip = profile.arrival(0.0, per_client)
    # the first dispatch (dispatch 1, at time 0, nobody busy): its clients and drops exactly
    first = sample_cohort(config.seed, 1, n_clients, slots)
    kept = ~clock.drops(first, 0.0, trip[first], 1)
    first_steps = float(per_client[first] @ kept)
    # later dispatches: the stationary mix, each client reporting with probability `reports`
    reports = np.full(n_clients, 1.0 - systems.dropout)
    period = systems.window_period
    if period is not None:  # online for the whole trip, from a uniform phase
        reports *= np.clip(systems.window_on * period - trip, 0.0, None) / period
    rate = _dispatch_rates(trip, slots)
    mix = rate / rate.sum()
    counted = reports
    if buff.max_staleness is not None:
        counted = reports * _fresh(trip, rate, reports, buff)
    per_dispatch = float(mix @ (reports * per_client))
    counted_share = float(mix @ counted)
    if counted_share <= 0.0:  # no update is ever used: the run never ends
        return 0 if per_dispatch == 0.0 else np.iinfo(np.int64).max
    updates = fed.rounds
    if fed.time_budget is not None:  # the run ends at the first update past the budget
        per_second = float(rate @ counted) / buff.buffer_size
        updates = min(updates, max(1, math.ceil(fed.time_budget * per_second)))
    events = updates * buff.buffer_size / counted_share
    return round(first_steps + max(0.0, events - 1.0) * per_dispatch)


def _dispatch_rates(trip: np.ndarray, slots: int) -> np.ndarray:
    """How often each client is sent (per second) when ``slots`` are kept busy and each
    refill is uniform over the idle clients: ``kappa / (1 + kappa * trip)``."""
    scale = float(trip.mean())
    if not scale > 0.0 or not math.isfinite(scale):
        return np.ones(len(trip))  # trips take no time: every client alike
    t = np.maximum(trip / scale, 1e-12)
    if slots >= len(t):
        return 1.0 / t / scale
    lo, hi = 0.0, 1.0
    while np.sum(hi * t / (1.0 + hi * t)) < slots:
        hi *= 2.0
    for _ in range(64):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if np.sum(mid * t / (1.0 + mid * t)) < slots else (lo, mid)
    return hi / (1.0 + hi * t) / scale


def _fresh(
    trip: np.ndarray, rate: np.ndarray, reports: np.ndarray, buff: FedBuffConfig
) -> np.ndarray:
    """The share of each client's updates within ``max_staleness`` server updates: the
    server updates made during its trip taken as Poisson (normal approximation) at the rate
    the counted updates make (a fixed point, by bisection). A rough estimate."""
    assert buff.max_staleness is not None
    limit = buff.max_staleness + 0.5

    def fresh(updates: float) -> np.ndarray:
        mean = updates * trip
        return 0.5 * (1.0 + _erf((limit - mean) / np.sqrt(np.maximum(mean, 1e-12))))

    lo, hi = 0.0, float(rate @ reports) / buff.buffer_size  # server updates per second
    for _ in range(60):
        mid = (lo + hi) / 2.0
        lo, hi = (
            (mid, hi)
            if float(rate @ (reports * fresh(mid))) / buff.buffer_size > mid
            else (lo, mid)
        )
    return fresh(hi)


_erf = np.vectorize(math.erf, otypes=[np.float64])

_MODEL_BYTES: dict[tuple[str, str, tuple[int, ...], int], int] = {}


def _model_bytes(config: RunConfig, dataset: FederatedDataset) -> int:
    """Bytes of the model ``config`` trains (what a transfer sends), as the engine counts them."""
    shape = tuple(dataset.feature_shape)
    key = (config.model.name, repr(config.model.options), shape, dataset.num_classes)
    if key not in _MODEL_BYTES:
        model = build_model(config.model, shape, dataset.num_classes, 0)
        _MODEL_BYTES[key] = 4 * sum(p.numel() for p in model.parameters())
    return _MODEL_BYTES[key]


@dataclass(frozen=True)
class RunCosts:
    """What a full run of the space's configs costs, in full runs of the base config (the
    unit of a budget), over ``draws`` configs spread across the space."""

    low: float
    mean: float
    high: float
    draws: int

    @property
    def varies(self) -> bool:
        """True unless every config drawn costs what the base config costs."""
        return max(abs(self.low - 1.0), abs(self.high - 1.0)) > 0.005

    def describe(self, unit: str = "") -> str:
        """The range (then ``unit``) and the mean: "0.36-4; 1.61 on average over 256 configs
        drawn across the space"."""
        mean = f"{self.mean:.2f}" if self.mean < 1e4 else f"{self.mean:.3g}"
        return (
            f"{self.low:.2g}-{self.high:.2g}{unit}; {mean} on average over "
            f"{self.draws} configs drawn across the space"
        )


def run_costs(space: SearchSpace, dataset: FederatedDataset, draws: int = 256) -> RunCosts | None:
    """The cost of a full run of ``draws`` Latin-hypercube configs of the space, relative to
    the base config's (local epochs, batch size, cohort and rounds change it; learning rates
    do not). None if no config drawn can be built (the search reports why)."""
    full = run_steps(space.base, dataset)
    costs = []
    for point in design(space, draws, space.tuner.seed):
        try:
            costs.append(run_steps(full_config(space.base, point), dataset) / full)
        except (FedhpoError, ValueError):
            continue
    if not costs or full <= 0:
        return None
    return RunCosts(min(costs), sum(costs) / len(costs), max(costs), len(costs))


def spent_steps(study: optuna.Study, before: Collection[int] = ()) -> int:
    """Steps of the study's trials, leaving out the trial numbers in ``before``."""
    return sum(
        rec.trial_steps(t) for t in study.get_trials(deepcopy=False) if t.number not in before
    )


class BudgetGuard:
    """Stops a running trial once the study's trials together have taken its step budget.

    Called after each round with the round's metrics (``steps``: client steps of the round).
    It keeps the trial's own steps and, every ``1/checks`` of the budget, writes them on the
    trial (so other workers count a running trial's compute) and rereads the others'. Near
    the end it checks more often: never later than when the running trials, spending as it
    does, would together have taken a quarter of what it saw left, and every round once that
    is less than a round. With one job it stops within a round of the budget; with several,
    the jobs together run on for about a round each (tests/tune/test_budget.py; checking
    every fiftieth only, 2 jobs overshot by 2% of the budget, 4 by 6%, 8 by 14%).

    A search hands back an answer: while the study has no complete trial, a running trial
    goes on past the budget (a budget smaller than the first rung's sample and one full
    run would otherwise end with nothing to export).
    """

    def __init__(self, trial: optuna.Trial, limit: int, checks: int = 50) -> None:
        self.trial = trial
        self.limit = limit
        self.interval = max(1, limit // checks)
        self.own = 0
        self.answered = False
        """True once the study is seen to hold a complete trial."""
        self.running = 1
        """Trials seen running at the last check (this one included)."""
        self.others = self._others()
        self.next_check = self._next_check()
        self.reason: str | None = None

    @classmethod
    def of(cls, trial: optuna.Trial) -> BudgetGuard | None:
        """The guard of the study's step budget (None if the study has none)."""
        budget = load_budget(trial.study)
        return None if budget is None or budget.steps is None else cls(trial, budget.steps)

    def __call__(self, round_: int, steps: int) -> bool:
        """Add a round's ``steps``; True (with ``reason`` set) if the budget is now spent."""
        self.own += steps
        if self.own >= self.next_check:
            self.trial.set_user_attr(rec.STEPS, self.own)
            self.others = self._others()
            self.next_check = self._next_check()
        total = self.others + self.own
        if total < self.limit or not self.answered:
            return False
        self.reason = (
            f"stopped at round {round_}: the search's budget is spent ({total} of "
            f"{self.limit} client steps, {self.own} of them this trial's)"
        )
        return True

    def _next_check(self) -> int:
        """The own steps at which to write and reread next: a ``1/checks`` of the budget
        on, or sooner, when the running trials would have taken a quarter of what is left."""
        left = self.limit - self.others - self.own
        return self.own + max(1, min(self.interval, left // (4 * self.running)))

    def _others(self) -> int:
        trials = self.trial.study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        self.answered = optuna.trial.TrialState.COMPLETE in states
        self.running = max(1, states.count(optuna.trial.TrialState.RUNNING))
        return sum(rec.trial_steps(t) for t in trials if t.number != self.trial.number)
