"""The package's round trip: the ORT-format file's outputs against the ONNX model's, on the user's
own inputs, on the shapes they give, or on generated inputs.

Generated inputs need a size for every symbolic dim, and a size that fits one model breaks another
(a detector or an OCR net downsamples by 32 and concatenates skip connections: 16 does not divide;
a reflect-padded audio front end needs a minimum length). So generated inputs are tried at
``SYMBOLIC_DIM`` and then at ``RETRY_SIZES``, the size that ran is said, and when none runs the
user is told which flag gives real ones: never an internal error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from onnxdeploy.data import check_arrays, read_array_file, specs_from_onnx
from onnxdeploy.data.feeds import is_feed_file, load_feeds
from onnxdeploy.data.specs import is_static
from onnxdeploy.data.synthetic import SYMBOLIC_DIM
from onnxdeploy.errors import UserError
from onnxdeploy.output_diff import CompareResult, compare_outputs

RETRY_SIZES = (32, 64, 224)
MAX_SAMPLES = 8  # of the user's inputs: the round trip checks the conversion, not the data


def _user_feeds(model, inputs, origin: str) -> dict[str, np.ndarray]:
    specs = specs_from_onnx(model)
    if not isinstance(inputs, Mapping) and is_feed_file(inputs):  # one whole feed, as given
        return dict(load_feeds(inputs, specs).feeds[0])
    if isinstance(inputs, Mapping):
        arrays = dict(inputs)
    else:
        arrays = read_array_file(Path(inputs), specs)
    fixed = {s.name: s.shape[0] for s in specs if s.shape and is_static(s.shape[0])}
    arrays = {name: a[: fixed.get(name, MAX_SAMPLES)] for name, a in arrays.items()}
    check_arrays(arrays, specs, origin, finite=True)
    return arrays


def _has_symbolic(model) -> bool:
    return any(
        not is_static(d) for spec in specs_from_onnx(model) for d in spec.shape[1:]
    )


def round_trip(
    onnx_path: Path,
    ort_path: Path,
    model,
    target,
    *,
    atol: float,
    rtol: float,
    inputs=None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    model_path: str = "",
) -> tuple[CompareResult, str]:
    """(the comparison, a note on which inputs it ran: empty for the defaults)."""
    from onnxdeploy.generate.signature import example_shapes
    from onnxdeploy.passes.apply import symbolic_sizes
    from onnxdeploy.passes.verify import paired_outputs
    from onnxdeploy.runtime import create_session
    from onnxdeploy.runtime.sessions import onnxruntime_failures, run_checked

    label = model_path or str(onnx_path)
    # log severity 4: a failed try is reported once by us, not as onnxruntime's error lines
    reference = create_session(str(onnx_path), threads=None, log_severity=4)
    # the converter's own setting for ARM targets
    config = {"session.qdqisint8allowed": "1"} if target.platform == "arm" else {}
    packaged = create_session(str(ort_path), threads=None, config=config, log_severity=4)
    names = [o.name for o in reference.get_outputs()]
    if inputs is not None:
        feeds = _user_feeds(model, inputs, str(inputs) if not isinstance(inputs, Mapping) else label)
        refs = dict(zip(names, run_checked(reference, None, feeds, label=label)))
        gots = dict(zip(names, run_checked(packaged, names, feeds, label=str(ort_path))))
        return compare_outputs([refs], [gots], atol=atol, rtol=rtol), "on the given inputs"
    examples, _ = symbolic_sizes(model, None)
    sizes = (SYMBOLIC_DIM,) if shapes or not _has_symbolic(model) else (SYMBOLIC_DIM, *RETRY_SIZES)
    failures = []
    for size in sizes:
        try:
            with onnxruntime_failures(label):
                refs, gots = paired_outputs(
                    reference,
                    packaged,
                    model_path=str(onnx_path),
                    examples=examples,
                    default_dim=size,
                    shapes={**(example_shapes(model.graph) or {}), **(shapes or {})} or None,
                )
        except UserError as exc:
            failures.append((size, str(exc).split("on these inputs: ", 1)[-1]))
            continue
        note = (
            f"symbolic dims verified at {size} (generated inputs at "
            f"{', '.join(str(s) for s, _ in failures)} did not run)"
            if failures
            else ""
        )
        return compare_outputs(refs, gots, atol=atol, rtol=rtol), note
    tried = (
        "at the given shapes"
        if shapes
        else f"symbolic dims tried at {', '.join(str(s) for s, _ in failures)}"
    )
    raise UserError(
        f"{label}: onnxruntime cannot run it on generated inputs ({tried}: "
        f"{failures[0][1][:200]}); give its real shapes with --shape NAME=DIMS or inputs with "
        "--input inputs.npz"
    )
