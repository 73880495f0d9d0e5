"""Benchmarks: workload W (fast vs reference trainer, lock-step and asynchronous), the FedProx
paper check, search throughput."""

from fedhpo.bench._async import AsyncReport, ScheduleFigures, async_configs, run_async_bench
from fedhpo.bench._fedprox import FedProxArm, arm_config, run_fedprox_check, summarize
from fedhpo.bench._tune import DEMO_SPACE, TuneFigures, run_tune_bench
from fedhpo.bench._workload import (
    TrainerFigures,
    WorkloadReport,
    peak_rss_bytes,
    run_workload_w,
    time_config,
    workload_w_config,
)

__all__ = [
    "DEMO_SPACE",
    "AsyncReport",
    "FedProxArm",
    "ScheduleFigures",
    "TrainerFigures",
    "TuneFigures",
    "WorkloadReport",
    "arm_config",
    "async_configs",
    "peak_rss_bytes",
    "run_async_bench",
    "run_fedprox_check",
    "run_tune_bench",
    "run_workload_w",
    "time_config",
    "summarize",
    "workload_w_config",
]
