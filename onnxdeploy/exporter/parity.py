"""Parity between a torch module and the ONNX file exported from it, run in onnxruntime."""

from __future__ import annotations

from onnxdeploy.output_diff import CompareResult, compare_outputs


def check_parity(module, onnx_path: str, shapes: list[tuple[int, ...]], *, batches: list[int],
                 atol: float, rtol: float, seed: int = 0) -> CompareResult:
    """Run both on the same seeded inputs at each batch size and compare every output."""
    import torch

    from onnxdeploy.runtime import create_session, generated_feeds

    session = create_session(onnx_path, log_severity=2)
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    reference, candidate = [], []
    for i, batch in enumerate(batches):
        feeds = generated_feeds(session, batch, seed=seed + i,
                                shapes={n: (batch, *s[1:]) for n, s in zip(input_names, shapes, strict=True)})
        with torch.no_grad():
            out = module(*[torch.from_numpy(feeds[n]) for n in input_names])
        outs = out if isinstance(out, (tuple, list)) else [out]
        reference.append({n: t.detach().numpy() for n, t in zip(output_names, outs, strict=True)})
        candidate.append(dict(zip(output_names, session.run(None, feeds), strict=True)))
    return compare_outputs(reference, candidate, atol=atol, rtol=rtol)
