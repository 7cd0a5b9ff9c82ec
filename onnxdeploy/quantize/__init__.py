"""Static int8 quantization on onnxruntime.quantization: calibration readers, ISA-aware defaults,
an accuracy-aware search and a latency check (torch-free)."""

from onnxdeploy.quantize.api import quantize
from onnxdeploy.quantize.fp16 import convert_fp16
from onnxdeploy.quantize.configs import Candidate
from onnxdeploy.quantize.isa import IsaDecision, decide
from onnxdeploy.quantize.request import Acceptance, QuantizeConfig
from onnxdeploy.quantize.result import Attempt, Confirmation, Fp16Result, QuantizeResult
from onnxdeploy.runtime_bench.plan import TimingPlan
from onnxdeploy._callable import make_callable

__all__ = [
    "Acceptance",
    "Attempt",
    "Candidate",
    "Confirmation",
    "Fp16Result",
    "IsaDecision",
    "QuantizeConfig",
    "QuantizeResult",
    "TimingPlan",
    "convert_fp16",
    "decide",
    "quantize",
]

make_callable(__name__)  # onnxdeploy.quantize(...) is quantize.quantize(...)
