"""Verify a transformed model against the original on seeded random inputs, in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx

from onnxdeploy.compare import CompareResult, compare_outputs


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # compare the graphs as written
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def verify_equivalent(original: onnx.ModelProto, candidate: onnx.ModelProto, *, rtol: float = 1e-5,
                      atol: float = 0.0, batches: tuple[int, ...] = (1, 3), seed: int = 0,
                      shapes: dict | None = None, model_path: str = "") -> CompareResult:
    """Compare every output; ``atol`` defaults to ``rtol`` times the largest reference magnitude,
    so "within 1e-5 relative" is judged against the output's scale, not element by element."""
    from onnxdeploy.runtime_bench.runner import generated_feeds

    ref_session, new_session = _session(original), _session(candidate)
    names = [o.name for o in ref_session.get_outputs()]
    references, candidates = [], []
    for i, batch in enumerate(batches):
        feeds = generated_feeds(ref_session.get_inputs(), batch, shapes=shapes, seed=seed + i, model_path=model_path)
        references.append(dict(zip(names, ref_session.run(None, feeds))))
        candidates.append(dict(zip(names, new_session.run(names, feeds))))
        if all(not (isinstance(d, str) or d is None) for i_ in ref_session.get_inputs() for d in i_.shape[:1]):
            break  # a static batch: one size is all there is
    scale = max((float(np.max(np.abs(v))) for r in references for v in r.values() if v.size and
                 np.all(np.isfinite(v))), default=1.0)
    return compare_outputs(references, candidates, atol=max(atol, rtol * scale), rtol=rtol)
