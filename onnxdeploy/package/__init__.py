"""Edge packages: a model in onnxruntime's ORT format, the operator config for a reduced onnxruntime
build, and a manifest of where it came from and what it was checked against (torch-free)."""

from onnxdeploy.package.build import PackageResult, package
from onnxdeploy.package.targets import TARGETS

__all__ = ["TARGETS", "PackageResult", "package"]
