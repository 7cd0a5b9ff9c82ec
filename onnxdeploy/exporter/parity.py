"""Parity between a torch module and the ONNX file exported from it, run in onnxruntime."""

from __future__ import annotations

from onnxdeploy.compare import CompareResult, compare_outputs
from onnxdeploy.runtime_bench.runner import generated_feeds


def check_parity(module, onnx_path: str, shapes: list[tuple[int, ...]], *, batches: list[int],
                 atol: float, rtol: float, seed: int = 0) -> CompareResult:
    """Run both on the same seeded inputs at each batch size and compare every output."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    reference, candidate = [], []
    for i, batch in enumerate(batches):
        feeds = generated_feeds(session.get_inputs(), batch, seed=seed + i,
                                shapes={n: (batch, *s[1:]) for n, s in zip(input_names, shapes, strict=True)})
        with torch.no_grad():
            out = module(*[torch.from_numpy(feeds[n]) for n in input_names])
        outs = out if isinstance(out, (tuple, list)) else [out]
        reference.append({n: t.detach().numpy() for n, t in zip(output_names, outs, strict=True)})
        candidate.append(dict(zip(output_names, session.run(None, feeds), strict=True)))
    return compare_outputs(reference, candidate, atol=atol, rtol=rtol)
