"""onnxdeploy: take a trained PyTorch model to a fast, small, verified ONNX model.

Importing the package is cheap and never imports torch: the commands that work on
ONNX files alone (inspect, bench, prune-channels, quantize, gate) must run on a
machine without PyTorch.
"""

from onnxdeploy.errors import CheckFailed, OnnxDeployError, UserError

__version__ = "0.1.0"

__all__ = ["CheckFailed", "OnnxDeployError", "UserError", "__version__"]
