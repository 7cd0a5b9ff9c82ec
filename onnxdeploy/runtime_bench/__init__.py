"""Timing with onnxruntime: runners, the timing loop, results and reports (torch-free)."""

from onnxdeploy.runtime_bench.bench import benchmark
from onnxdeploy.runtime_bench.plan import TimingPlan
from onnxdeploy.runtime_bench.result import SCHEMA, BenchResult, load_results, save_results
from onnxdeploy.runtime import PROVIDERS, OrtRunner, generated_feeds
from onnxdeploy.runtime_bench.stats import LatencyStats, bootstrap_ratio_ci

__all__ = ["PROVIDERS", "SCHEMA", "BenchResult", "LatencyStats", "OrtRunner", "TimingPlan", "benchmark", "bootstrap_ratio_ci",
           "generated_feeds", "load_results", "save_results"]
