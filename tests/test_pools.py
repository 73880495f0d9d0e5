"""stop_pool: a pool interrupted by Ctrl-C or SIGTERM ends its work now (the promotion pool,
the quality benchmark's grid), where leaving it waited for every task or left them running."""

from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor

from fedhpo._pools import stop_pool
from tests.tune.procs import alive, wait_until


def _forever() -> None:
    while True:
        time.sleep(0.05)


def test_stop_pool_kills_the_running_work_and_drops_the_queued() -> None:
    pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
    futures = [pool.submit(_forever) for _ in range(3)]
    wait_until("the first task to run", futures[0].running)
    processes = list((pool._processes or {}).values())
    assert processes and all(p.is_alive() for p in processes)
    pids = [p.pid for p in processes]
    stop_pool(pool)  # returns: the running task, which never ends, was killed
    # (asked of the OS: the pool's own thread may reap a process before Process.join does,
    # and is_alive() then still says True)
    assert not [pid for pid in pids if alive(pid)]
    assert not [f for f in futures if f.done() and not f.cancelled() and f.exception() is None]
