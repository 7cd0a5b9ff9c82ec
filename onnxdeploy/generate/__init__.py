"""Token generation with decoder-with-past ONNX graphs in onnxruntime (torch-free)."""

from onnxdeploy.generate.generator import GenerationResult, Generator
from onnxdeploy.generate.sampling import Sampling
from onnxdeploy.generate.signature import META_KEY, DecoderSignature, read_signature

__all__ = [
    "META_KEY",
    "DecoderSignature",
    "GenerationResult",
    "Generator",
    "Sampling",
    "read_signature",
]
