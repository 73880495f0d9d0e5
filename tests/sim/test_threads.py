"""One thread per process covers torch and the BLAS under numpy."""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_info

from fedhpo.sim.threads import set_threads


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_set_threads_sets_torch_and_numpys_blas() -> None:
    before = torch.get_num_threads()
    try:
        set_threads(2)
        assert torch.get_num_threads() == 2 and _blas_threads() <= {2}
        set_threads(1)
        assert torch.get_num_threads() == 1 and _blas_threads() == {1}
    finally:
        set_threads(before)
