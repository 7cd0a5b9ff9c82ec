"""Find where two models diverge: every output, and layer by layer with each node fed the
reference's own inputs; repair by putting the fewest nodes back to fp32."""

from onnxdeploy.compare.api import compare, compare_report
from onnxdeploy.compare.metrics import TensorDiff, Tolerance
from onnxdeploy.compare.request import DEFAULT_TOLERANCE, CompareRequest, candidate_kind
from onnxdeploy.compare.result import CompareReport
from onnxdeploy.compare.store import TensorStore
from onnxdeploy.compare.sweep import NodeDiff

__all__ = [
    "DEFAULT_TOLERANCE",
    "CompareReport",
    "CompareRequest",
    "NodeDiff",
    "TensorDiff",
    "TensorStore",
    "Tolerance",
    "candidate_kind",
    "compare",
    "compare_report",
]
