"""Threads per process for the simulator's kernels: torch's and numpy's BLAS (OpenBLAS)."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits

__all__ = ["set_threads"]


def set_threads(n: int = 1) -> None:
    """Let torch and the BLAS under numpy use ``n`` threads in this process.

    Small models on CPU run several times faster on one thread per process, with parallelism
    from vectorizing clients and from running trials in separate processes; extra threads
    (OpenBLAS starts one per core for the fast trainer's larger numpy matmuls) only make the
    processes compete for the cores. Results do not depend on ``n``.
    """
    torch.set_num_threads(n)
    threadpool_limits(n, user_api="blas")
