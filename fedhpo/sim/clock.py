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
import io
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


_TRACE_KEY = "systems.trace"


def load_trace(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(speed, bandwidth)`` per row of a CSV trace with those two columns (header row;
    UTF-8, a byte order mark allowed; other columns are ignored, but every row has as many
    fields as the header)."""
    reader = csv.reader(io.StringIO(_trace_text(path), newline=""))
    speeds, bandwidths = [], []
    try:
        header = _header(next((row for row in reader if row), []), path, reader.line_num)
        for row in reader:
            if row:  # not a blank line
                speed, bandwidth = _row(row, header, path, reader.line_num)
                speeds.append(speed)
                bandwidths.append(bandwidth)
    except csv.Error as exc:  # a NUL byte, a field past the csv module's size limit
        raise ConfigError(
            f"not a readable CSV: {exc}", key=_TRACE_KEY, source=path, line=reader.line_num
        ) from None
    if not speeds:
        raise ConfigError("the trace has no rows", key=_TRACE_KEY, source=path)
    return np.array(speeds), np.array(bandwidths)


def _trace_text(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"trace file not found: {path}; give a CSV with columns speed,bandwidth",
            key=_TRACE_KEY,
        )
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not a UTF-8 text file (byte {exc.start}); give a CSV with columns speed,bandwidth",
            key=_TRACE_KEY,
            source=path,
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read it: {reason}", key=_TRACE_KEY, source=path) from None


def _header(header: list[str], path: str, line: int) -> list[str]:
    if {"speed", "bandwidth"} - set(header):
        raise ConfigError(
            f"needs columns speed and bandwidth (bytes/s); found {header}",
            key=_TRACE_KEY,
            source=path,
            line=max(line, 1),
        )
    return header


def _row(row: list[str], header: list[str], path: str, line: int) -> tuple[float, float]:
    if len(row) != len(header):
        raise ConfigError(
            f"row has {len(row)} field{'s' * (len(row) != 1)}; the header has {len(header)} "
            f"({','.join(header)})",
            key=_TRACE_KEY,
            source=path,
            line=line,
        )
    speed = _positive(row[header.index("speed")], path, line, "speed")
    return speed, _positive(row[header.index("bandwidth")], path, line, "bandwidth")


def _positive(text: str, path: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isinf(value):
        problem = "a finite number"
    elif not value > 0:
        problem = "a number > 0"
    else:
        return value
    raise ConfigError(
        f"{column} must be {problem}, got {text!r}", key=_TRACE_KEY, source=path, line=line
    )


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
