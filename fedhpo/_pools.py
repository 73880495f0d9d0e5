"""Process pools that stop when their parent is interrupted, instead of running on."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """End ``pool`` now: its queued work is dropped, its running work killed. Leaving a pool
    (its ``with`` block, ``shutdown()``) waits for every submitted task instead: on a Ctrl-C
    or SIGTERM the parent would sit for the rest of the work, or die and leave it running."""
    processes = list((pool._processes or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join()
