"""Parity between a torch module and the ONNX file exported from it, run in onnxruntime."""

from __future__ import annotations

import numpy as np

from onnxdeploy.errors import CheckFailed
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
    origin: str | None = None,
) -> CompareResult:
    """Run both on the same seeded inputs for each case (shapes by input name) and compare every
    output.

    ``module`` takes the inputs in the model's input order and returns its outputs flattened;
    ``origin`` names the model in messages (the output a staged file is written for).
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
        if len(outs) != len(output_names):
            raise CheckFailed(
                f"{origin or onnx_path}: at input shapes {shapes} the model returns {len(outs)} outputs, the "
                f"exported graph {len(output_names)}: its outputs depend on the input"
            )
        reference.append(
            detections_in_order(
                {n: t.detach().numpy() for n, t in zip(output_names, outs, strict=True)}
            )
        )
        got = session.run(None, feeds)
        candidate.append(detections_in_order(dict(zip(output_names, got, strict=True))))
    return compare_outputs(reference, candidate, atol=atol, rtol=rtol)


def detections_in_order(outputs: dict) -> dict:
    """Each image's detections (``<prefix>boxes``/``scores``/``labels``, as torchvision's detectors
    return them) sorted by score, then label, then box: NMS and top-k keep tied detections in an
    order that differs between PyTorch and onnxruntime, and the set, not the order, is the result.
    """
    outputs = dict(outputs)
    for name in [n for n in outputs if n.endswith("scores")]:
        prefix = name[: -len("scores")]
        boxes, labels = outputs.get(prefix + "boxes"), outputs.get(prefix + "labels")
        scores = outputs[name]
        if boxes is None or scores.ndim != 1 or boxes.shape[:1] != scores.shape:
            continue
        keys = [boxes[:, i] for i in reversed(range(boxes.shape[1]))]
        if labels is not None and labels.shape == scores.shape:
            keys.append(labels)
        order = np.lexsort(keys + [-scores])
        outputs[name], outputs[prefix + "boxes"] = scores[order], boxes[order]
        if labels is not None and labels.shape == scores.shape:
            outputs[prefix + "labels"] = labels[order]
    return outputs
