"""Static int8 quantization on onnxruntime.quantization: calibration readers, ISA-aware defaults,
an accuracy-aware search and a latency check (torch-free)."""

from onnxdeploy.quantize.api import QuantizeResult, convert_fp16, quantize
from onnxdeploy.quantize.isa import IsaDecision, decide

__all__ = ["IsaDecision", "QuantizeResult", "convert_fp16", "decide", "quantize"]
