"""Simulator benchmarks: workload W (fast vs reference trainer) and the FedProx paper check."""

from fedhpo.bench._fedprox import FedProxArm, arm_config, run_fedprox_check, summarize
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
    "WorkloadReport",
    "arm_config",
    "peak_rss_bytes",
    "run_fedprox_check",
    "run_workload_w",
    "summarize",
    "workload_w_config",
]
