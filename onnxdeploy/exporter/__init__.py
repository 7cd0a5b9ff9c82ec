"""torch -> verified ONNX. Importing this package does not import torch; calling ``export`` does."""

from onnxdeploy.exporter.export import EXPORTERS, ExportResult, export
from onnxdeploy.exporter.source import ModelSource, load_source, parse_input_shape

__all__ = ["EXPORTERS", "ExportResult", "ModelSource", "export", "load_source", "parse_input_shape"]
