"""``quantize --fp16`` that holds: convert with onnxruntime's converter, find the nodes that
overflow or lose precision in fp16 on the data (layer-wise, each node fed the fp32 model's own
inputs), keep the fewest of them in fp32 with the casts between them merged, and check NaN/Inf and
parity on the CPU before writing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from onnxdeploy.atomic import refuse_overwrite, scratch_dir
from onnxdeploy.onnx_io import file_bytes, load_model, save_model
from onnxdeploy.quantize.result import Fp16Result
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)

CHECK_SAMPLES = 32  # samples of the user's data the layer-wise check runs on


def _check_inputs(model, inputs: str | None, folder: Path) -> str | None:
    """The first samples of ``inputs`` (.npz/.npy keyed by ``model``'s input names) as an .npz for
    compare."""
    if inputs is None:
        return None
    from onnxdeploy.data.readers import read_array_file
    from onnxdeploy.data.specs import specs_from_onnx

    arrays = read_array_file(Path(inputs), specs_from_onnx(model))
    path = folder / "check.npz"
    np.savez(path, **{k: v[:CHECK_SAMPLES] for k, v in arrays.items()})
    return str(path)


def convert_fp16(
    model_path: str,
    output: str,
    *,
    keep_io_types: bool = True,
    inputs: str | None = None,
    batch: int = 1,
    progress: Callable[[str], None] = silent,
) -> Fp16Result:
    """float16 weights and compute for GPU targets; inputs and outputs stay float32 unless asked.
    With float32 I/O the result is checked layer-wise on ``inputs`` (or generated ones) and the
    nodes that do not hold in fp16 stay fp32; CheckFailed when even that does not hold."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from onnxdeploy.compare import DEFAULT_TOLERANCE, CompareRequest
    from onnxdeploy.compare.repair import repair
    from onnxdeploy.quantize.api import _check_not_quantized

    refuse_overwrite([output], [model_path, inputs])
    model = load_model(model_path)
    _check_not_quantized(model, model_path)
    if not keep_io_types:  # fp16 inputs: nothing of the fp32 model's to feed it; converted as asked
        save_model(convert_float_to_float16(model, keep_io_types=False), output)
        return Fp16Result(output, file_bytes(model_path), file_bytes(output))
    with scratch_dir("onnxdeploy-fp16-") as folder:
        plain = folder / "plain.onnx"
        save_model(convert_float_to_float16(model, keep_io_types=True), plain)
        request = CompareRequest(
            model_path,
            str(plain),
            inputs=_check_inputs(model, inputs, folder),
            batch=batch,
            tolerance=DEFAULT_TOLERANCE["fp16"],
            layerwise=True,
        )
        fixed = repair(
            request,
            output,
            strict=True,
            time_it=False,
            origin=f"{model_path} in fp16",
            progress=progress,
        )
    diverged = tuple(n.label for n in fixed.before.nodes if not n.diff.passed)
    return Fp16Result(
        output,
        file_bytes(model_path),
        file_bytes(output),
        fixed.after,
        fixed.labels,
        diverged,
    )
