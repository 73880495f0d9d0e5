"""The event engine's vocabulary: dispatches, timestamped events, the queue, schedules."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Literal, Protocol

from fedhpo.sim.work import WorkResult

__all__ = ["Dispatch", "Event", "EventKind", "EventQueue", "Schedule"]

EventKind = Literal["sent", "arrived", "dropped", "cut", "deadline", "update"]


@dataclass(frozen=True)
class Event:
    """One thing that happened at simulated ``time``: the run's replayable log.

    sent / arrived / dropped / cut: ``client`` and the model ``version`` it started from
    (``staleness`` on arrival: server updates since then); deadline: ``version`` is the
    round's model version; update: ``version`` is the new server version.
    """

    time: float
    kind: EventKind
    client: int = -1
    version: int = -1
    staleness: int | None = None


@dataclass(slots=True, eq=False)
class Dispatch:
    """One client sent one model: its trip and, once trained, its row of a WorkResult."""

    seq: int
    """Order of dispatch over the whole run (0, 1, ...)."""
    client: int
    version: int
    stream: int
    """The dispatch batch this client was sent in (its random stream)."""
    tag: int
    """The round (synchronous) the dispatch belongs to; 0 for asynchronous ones."""
    sent: float
    arrival: float
    """When its update arrives (or, if ``dropped``, when the server gives up on it)."""
    steps: int
    """Local steps it was asked for (fewer than planned when cut to fit a deadline)."""
    dropped: bool
    state: Literal["flight", "arrived", "dropped", "cut"] = "flight"
    result: WorkResult | None = None
    row: int = -1


class EventQueue:
    """Timestamped entries in (time, insertion) order: equal times keep their push order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, Dispatch | None, int]] = []
        self._count = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, time: float, kind: str, dispatch: Dispatch | None = None, tag: int = 0) -> None:
        heapq.heappush(self._heap, (time, self._count, kind, dispatch, tag))
        self._count += 1

    def pop_due(self) -> tuple[float, list[tuple[str, Dispatch | None, int]]]:
        """The earliest time and every entry due then, in push order."""
        time = self._heap[0][0]
        due = []
        while self._heap and self._heap[0][0] == time:
            _, _, kind, dispatch, tag = heapq.heappop(self._heap)
            due.append((kind, dispatch, tag))
        return time, due


class Schedule(Protocol):
    """When to dispatch and which arrivals make a server update. Call order: ``start`` once;
    then at each simulated time, ``on_arrival`` / ``on_drop`` / ``on_deadline`` for every
    event due (in queue order), then ``after``."""

    def start(self) -> None: ...
    def on_arrival(self, d: Dispatch) -> None: ...
    def on_drop(self, d: Dispatch) -> None: ...
    def on_deadline(self, tag: int) -> None: ...
    def after(self) -> None: ...
