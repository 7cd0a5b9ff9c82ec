"""The one data layer: named, typed inputs; labelled splits; readers; streaming batches; validation;
the built-in digits set; and the one definition of top-1 (torch-free, below every capability)."""

from onnxdeploy.data.dataset import (
    DEFAULT_INPUT,
    Dataset,
    Split,
    class_axis,
    top1,
    top1_accuracy,
    top1_agreement,
)
from onnxdeploy.data.readers import load_npz, read_array_file
from onnxdeploy.data.sources import (
    DataLike,
    calibration_source,
    describe,
    digits_dataset,
    eval_split,
    is_random,
    load_dataset,
)
from onnxdeploy.data.specs import (
    ORT_TYPES,
    InputSpec,
    default_input_names,
    specs_for_shapes,
    specs_from_onnx,
)
from onnxdeploy.data.streaming import batches, count_samples, fingerprint
from onnxdeploy.data.synthetic import random_array
from onnxdeploy.data.validation import check_arrays, check_labels

__all__ = [
    "DEFAULT_INPUT",
    "ORT_TYPES",
    "DataLike",
    "Dataset",
    "InputSpec",
    "Split",
    "batches",
    "calibration_source",
    "check_arrays",
    "check_labels",
    "class_axis",
    "count_samples",
    "default_input_names",
    "describe",
    "digits_dataset",
    "eval_split",
    "fingerprint",
    "is_random",
    "load_dataset",
    "load_npz",
    "random_array",
    "read_array_file",
    "specs_for_shapes",
    "specs_from_onnx",
    "top1",
    "top1_accuracy",
    "top1_agreement",
]
