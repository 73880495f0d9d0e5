"""Benchmarks: workload W (fast vs reference trainer), the FedProx paper check, search throughput."""

from fedhpo.bench._fedprox import FedProxArm, arm_config, run_fedprox_check, summarize
from fedhpo.bench._tune import TuneFigures, run_tune_bench
from fedhpo.bench._workload import (
    TrainerFigures,
    WorkloadReport,
    peak_rss_bytes,
    run_workload_w,
    workload_w_config,
)

__all__ = [
    "FedProxArm",
    "TrainerFigures",
    "TuneFigures",
    "WorkloadReport",
    "arm_config",
    "peak_rss_bytes",
    "run_fedprox_check",
    "run_tune_bench",
    "run_workload_w",
    "summarize",
    "workload_w_config",
]
