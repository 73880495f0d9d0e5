"""Simulated time: client speeds, link bandwidths and availability; each dispatch's timing.

A :class:`Clock` answers two questions about the clients of one dispatch: how long each
takes (:meth:`~Clock.profile`: download, seconds per local step, upload) and whether it
reports at all (:meth:`~Clock.drops`: a per-dispatch dropout draw, or being offline at any
moment of its trip). :class:`SystemsClock` draws the clients' hardware once per run from
``systems`` (lognormal speeds and bandwidths, or a CSV trace) with seeds derived in
:mod:`fedhpo.sim.sampling`; :class:`ReplayClock` replays a hand-written list of trips, so a
test can pin down exactly when every update arrives.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from fedhpo.config import SystemsConfig
from fedhpo.errors import ConfigError
from fedhpo.sim.sampling import (
    STREAM_BANDWIDTH,
    STREAM_DROPOUT,
    STREAM_SPEED,
    STREAM_WINDOW,
    rng,
)

__all__ = ["Clock", "Profile", "ReplayClock", "SystemsClock", "load_trace"]


@dataclass(frozen=True, eq=False)
class Profile:
    """Timing of the ``k`` clients of one dispatch, in seconds; arrays in dispatch order."""

    download: np.ndarray
    step_seconds: np.ndarray
    upload: np.ndarray

    def arrival(self, sent: float, steps: np.ndarray) -> np.ndarray:
        """When each client's update reaches the server after ``steps`` local steps."""
        return sent + self.download + steps * self.step_seconds + self.upload

    def steps_within(self, seconds: float) -> np.ndarray:
        """The most local steps each client can take and still report within ``seconds``."""
        spare = seconds - self.download - self.upload
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            fit = np.where(self.step_seconds > 0, np.floor(spare / self.step_seconds), np.inf)
        fit = np.where(spare < 0, -1, fit)
        return np.minimum(fit, np.iinfo(np.int64).max // 2).astype(np.int64)


class Clock(Protocol):
    """Timing and availability of dispatched clients. Call order per dispatch: ``profile``,
    then ``drops`` with the trips' end times."""

    def profile(self, clients: np.ndarray, batch_sizes: np.ndarray, dispatch: int) -> Profile:
        """Timing of ``clients`` (with these local batch sizes) in dispatch ``dispatch``."""
        ...

    def drops(
        self, clients: np.ndarray, sent: float, until: np.ndarray, dispatch: int
    ) -> np.ndarray:
        """bool: which clients never report (dropout, or offline during ``[sent, until]``)."""
        ...


def load_trace(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(speed, bandwidth)`` per row of a CSV trace with those two columns (header row)."""
    key = "systems.trace"
    file = Path(path)
    if not file.is_file():
        raise ConfigError("trace file not found; give a CSV with speed,bandwidth", key=key)
    with file.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"speed", "bandwidth"} - set(reader.fieldnames or ())
        if missing:
            found = reader.fieldnames or []
            raise ConfigError(
                f"needs columns speed and bandwidth (bytes/s); found {found}",
                key=key,
                source=path,
                line=1,
            )
        speeds, bandwidths = [], []
        for row in reader:
            speeds.append(_positive(row["speed"], path, reader.line_num, "speed"))
            bandwidths.append(_positive(row["bandwidth"], path, reader.line_num, "bandwidth"))
    if not speeds:
        raise ConfigError("the trace has no rows", key=key, source=path)
    return np.array(speeds), np.array(bandwidths)


def _positive(text: str | None, path: str, line: int, column: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(
            f"{column} must be a number > 0, got {text!r}",
            key="systems.trace",
            source=path,
            line=line,
        )
    return value


class SystemsClock:
    """Clients' hardware drawn once per run from ``cfg`` (or read from its trace).

    A step costs ``batch_size * sample_seconds / speed`` seconds (a short last batch costs a
    full one); a transfer ``latency + model_bytes / bandwidth``. Client ``c`` is online while
    ``(t + phase[c]) mod window_period < window_on * window_period``.
    """

    def __init__(self, cfg: SystemsConfig, num_clients: int, model_bytes: int, seed: int):
        self.cfg = cfg
        self.model_bytes = model_bytes
        self.seed = seed
        if cfg.trace is not None:
            speed, bandwidth = load_trace(cfg.trace)
            rows = np.arange(num_clients) % len(speed)
            self.speed, self.bandwidth = speed[rows], bandwidth[rows]
        else:
            self.speed = rng(seed, STREAM_SPEED).lognormal(0.0, cfg.speed_sigma, num_clients)
            self.bandwidth = rng(seed, STREAM_BANDWIDTH).lognormal(
                math.log(cfg.bandwidth), cfg.bandwidth_sigma, num_clients
            )
        period = cfg.window_period
        self.phase = None if period is None else rng(seed, STREAM_WINDOW).random(num_clients)

    def profile(self, clients: np.ndarray, batch_sizes: np.ndarray, dispatch: int) -> Profile:
        transfer = self.cfg.latency + self.model_bytes / self.bandwidth[clients]
        step = batch_sizes * self.cfg.sample_seconds / self.speed[clients]
        return Profile(transfer, step, transfer.copy())

    def drops(
        self, clients: np.ndarray, sent: float, until: np.ndarray, dispatch: int
    ) -> np.ndarray:
        out = np.zeros(len(clients), dtype=bool)
        if self.cfg.dropout:
            out = rng(self.seed, STREAM_DROPOUT, dispatch).random(len(clients)) < self.cfg.dropout
        period = self.cfg.window_period
        if self.phase is not None and period is not None:
            into = np.mod(sent / period + self.phase[clients], 1.0) * period
            out |= into + (until - sent) >= self.cfg.window_on * period
        return out


class ReplayClock:
    """A scripted clock for tests: the ``i``-th client ever dispatched gets ``trips[i]``,
    ``(seconds per local step, drops out)``; transfers take no time."""

    def __init__(self, trips: Sequence[tuple[float, bool]]):
        self.trips = list(trips)
        self.used = 0
        self._dropped: dict[int, np.ndarray] = {}

    def profile(self, clients: np.ndarray, batch_sizes: np.ndarray, dispatch: int) -> Profile:
        k = len(clients)
        if self.used + k > len(self.trips):
            raise IndexError(
                f"the replay has {len(self.trips)} trips; dispatch {dispatch} needs more"
            )
        mine = self.trips[self.used : self.used + k]
        self.used += k
        self._dropped[dispatch] = np.array([d for _, d in mine], dtype=bool)
        zero = np.zeros(k)
        return Profile(zero, np.array([s for s, _ in mine], dtype=np.float64), zero.copy())

    def drops(
        self, clients: np.ndarray, sent: float, until: np.ndarray, dispatch: int
    ) -> np.ndarray:
        return self._dropped.pop(dispatch)
