"""Models below the opset int8 QDQ needs are upgraded on a copy, verified before use.

Per-channel ``QuantizeLinear``/``DequantizeLinear`` (their ``axis`` attribute) arrived in opset 13;
onnxruntime's quantizer writes them into an opset-11 graph anyway, and its own loader then refuses
the result ("Unrecognized attribute: axis for operator DequantizeLinear"). Trained models off the
shelf are often opset 11 (PP-OCR, many detectors). onnx's version converter does the upgrade; the
copy's outputs must equal the input model's on the scoring samples, or the upgrade is refused.
"""

from __future__ import annotations

import onnx

from onnxdeploy.data import Split
from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import default_opset, load_model, save_model
from onnxdeploy.output_diff import compare_outputs
from onnxdeploy.runtime import run_batched

QDQ_OPSET = 13
RTOL, ATOL = 1e-4, 1e-5  # an upgrade renames ops' attributes into inputs: the numbers stay


def upgrade_for_qdq(src: str, dst: str, split: Split) -> str | None:
    """Write ``src`` upgraded to ``QDQ_OPSET`` at ``dst`` and return a note saying so, or None
    (nothing written) when its opset is high enough. UserError naming ``src`` when the converter
    cannot upgrade it or the upgraded copy computes something else."""
    model = load_model(src, check=False)
    version = default_opset(model)
    if version >= QDQ_OPSET:
        return None
    try:
        converted = onnx.version_converter.convert_version(model, QDQ_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises bare RuntimeErrors
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{src}: opset {version} is below the {QDQ_OPSET} int8 QDQ needs, and onnx's version "
            f"converter cannot upgrade it ({first}); re-export the model at opset >= {QDQ_OPSET}"
        ) from exc
    save_model(converted, dst)
    before, after = run_batched(src, split), run_batched(dst, split)
    diff = compare_outputs([before], [after], atol=ATOL, rtol=RTOL)
    if not diff:
        raise UserError(
            f"{src}: opset {version} is below the {QDQ_OPSET} int8 QDQ needs, and the upgraded "
            f"copy computes something else (max abs difference {diff.max_abs:.3g}); re-export the "
            f"model at opset >= {QDQ_OPSET}"
        )
    return (
        f"opset {version} upgraded to {QDQ_OPSET} on a copy for int8 QDQ (onnx's version "
        f"converter; outputs equal to the input model's on {len(split)} samples, max abs "
        f"difference {diff.max_abs:.2g})"
    )
