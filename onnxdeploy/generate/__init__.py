"""Token generation with decoder-with-past ONNX graphs in onnxruntime (torch-free)."""

from onnxdeploy.generate.generator import Generator, open_generator
from onnxdeploy.generate.tokens import GenerationResult
from onnxdeploy.generate.sampling import Sampling
from onnxdeploy.generate.signature import META_KEY, DecoderSignature, read_signature

__all__ = [
    "META_KEY",
    "DecoderSignature",
    "GenerationResult",
    "Generator",
    "Sampling",
    "open_generator",
    "read_signature",
]
