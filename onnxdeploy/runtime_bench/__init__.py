"""Timing with onnxruntime on this machine: runners, the timing loop, requests, results and
reports (torch-free). ``onnxdeploy.benchmarking.benchmark`` picks this machine or a cluster."""

from onnxdeploy.runtime import PROVIDERS, OrtRunner, generated_feeds
from onnxdeploy.runtime_bench.local import time_here
from onnxdeploy.runtime_bench.plan import TimingPlan
from onnxdeploy.runtime_bench.request import BenchRequest
from onnxdeploy.runtime_bench.result import (
    SCHEMA,
    BenchResult,
    BenchRun,
    load_results,
    save_results,
)
from onnxdeploy.runtime_bench.stats import LatencyStats, bootstrap_ratio_ci

__all__ = [
    "PROVIDERS",
    "SCHEMA",
    "BenchRequest",
    "BenchResult",
    "BenchRun",
    "LatencyStats",
    "OrtRunner",
    "TimingPlan",
    "bootstrap_ratio_ci",
    "generated_feeds",
    "load_results",
    "save_results",
    "time_here",
]
