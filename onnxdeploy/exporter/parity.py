"""Parity between a torch module and the ONNX file exported from it, run in onnxruntime."""

from __future__ import annotations

from onnxdeploy.output_diff import CompareResult, compare_outputs


def parity_cases(inputs, batches: list[int]) -> list[dict[str, tuple[int, ...]]]:
    """Input shapes to compare at: each batch size, and for inputs with dynamic axes (a sequence
    length)
    one more case at another length, so a length baked into the graph is caught."""

    def shapes(batch: int, grow: int = 0) -> dict[str, tuple[int, ...]]:
        return {
            i.name: tuple(
                batch if axis == 0 else d + (grow if axis in i.dynamic else 0)
                for axis, d in enumerate(i.shape)
            )
            for i in inputs
        }

    cases = [shapes(b) for b in batches]
    longest = max((i.shape[a] for i in inputs for a in i.dynamic), default=0)
    if longest:
        cases.append(shapes(batches[-1], grow=max(1, longest // 2)))
    return cases


def check_parity(
    module,
    onnx_path: str,
    cases: list[dict[str, tuple[int, ...]]],
    *,
    atol: float,
    rtol: float,
    seed: int = 0,
    int_high: int = 10,
) -> CompareResult:
    """Run both on the same seeded inputs for each case (shapes by input name) and compare every
    output.

    ``module`` takes the inputs in the model's input order and returns its outputs flattened.
    """
    import torch

    from onnxdeploy.runtime import create_session, generated_feeds

    session = create_session(onnx_path, log_severity=2)
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    reference, candidate = [], []
    for i, shapes in enumerate(cases):
        feeds = generated_feeds(session, 1, seed=seed + i, shapes=shapes, int_high=int_high)
        with torch.no_grad():
            out = module(*[torch.from_numpy(feeds[n]) for n in input_names])
        outs = out if isinstance(out, (tuple, list)) else [out]
        reference.append({n: t.detach().numpy() for n, t in zip(output_names, outs, strict=True)})
        candidate.append(dict(zip(output_names, session.run(None, feeds), strict=True)))
    return compare_outputs(reference, candidate, atol=atol, rtol=rtol)
