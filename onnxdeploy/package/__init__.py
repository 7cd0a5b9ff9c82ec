"""Edge packages: a model in onnxruntime's ORT format, the operator config for a reduced onnxruntime
build, and a manifest of where it came from and what it was checked against (torch-free)."""

from onnxdeploy.package.build import PackageResult, package
from onnxdeploy.package.targets import TARGETS
from onnxdeploy._callable import make_callable

__all__ = ["TARGETS", "PackageResult", "package"]

make_callable(__name__)  # onnxdeploy.package(...) is package.package(...)
