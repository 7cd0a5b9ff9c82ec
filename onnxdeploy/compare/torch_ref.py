"""A PyTorch model as the reference: its outputs, and with hooks the output of every module that
the ONNX graph's node scopes name (``torch.onnx`` records them), stored under the ONNX tensor that
the module's last node produces."""

from __future__ import annotations

import numpy as np

from onnxdeploy.compare.graph import GraphFacts, module_scopes
from onnxdeploy.compare.store import TensorStore
from onnxdeploy.errors import UserError


def scope_tensors(cand: GraphFacts) -> dict[str, str]:
    """module path -> the ONNX tensor its last node (in topological order) produces."""
    last: dict[str, int] = {}
    for index, node in enumerate(cand.nodes):
        for scope in module_scopes(node):
            last[scope] = index
    return {
        scope: cand.nodes[index].output[0]
        for scope, index in last.items()
        if cand.nodes[index].output
    }


def torch_reference(
    request, cand: GraphFacts, feeds: dict[str, np.ndarray], store: TensorStore, *, hooks: bool
):
    """(outputs by the candidate's output names, {ONNX tensor: module path} of the module outputs
    put in ``store``)."""
    import torch

    from onnxdeploy.exporter.source import load_source
    from onnxdeploy.generate.signature import PAST
    from onnxdeploy.models.outputs import flatten_outputs

    shapes = [tuple(v.shape) for v in feeds.values()]
    if any(PAST.match(name) for name in feeds):
        raise UserError(
            f"{request.candidate}: a decoder with a KV cache; its parity with "
            f"{request.reference} is export's (greedy tokens step by step, which export checks); "
            "compare it with another ONNX file of it instead"
        )
    source = load_source(request.reference, checkpoint=request.checkpoint, input_shapes=shapes)
    module = source.module
    targets = scope_tensors(cand) if hooks else {}
    calls: dict[str, int] = {}
    kept: dict[str, str] = {}
    handles = []

    def hook(path: str):
        def record(_module, _inputs, output):
            calls[path] = calls.get(path, 0) + 1
            if isinstance(output, torch.Tensor) and output.is_floating_point():
                # a copy: numpy() shares the tensor's memory, and a later in-place op (ReLU's
                # inplace=True after a BatchNorm) would rewrite what was recorded here
                store[targets[path]] = output.detach().float().cpu().numpy().copy()
                kept[targets[path]] = path

        return record

    for path, sub in module.named_modules():
        if path in targets:
            handles.append(sub.register_forward_hook(hook(path)))
    tensors = [torch.from_numpy(np.array(v, order="C")) for v in feeds.values()]
    try:
        with torch.no_grad():
            out = module(**dict(zip(feeds, tensors))) if source.by_name else module(*tensors)
    except (TypeError, ValueError, RuntimeError, IndexError) as exc:  # the inputs do not fit it
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UserError(
            f"{request.reference}: the PyTorch model cannot run on {request.candidate}'s inputs "
            f"({', '.join(feeds)}): {type(exc).__name__}: {first}"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    for tensor, path in list(kept.items()):
        if (
            calls.get(path, 0) != 1
        ):  # a module called twice: which call the graph's node is, is unknown
            kept.pop(tensor)
            store.drop(tensor)
    names = list(cand.outputs)
    flat = [t for _, t in flatten_outputs(out)]
    outputs = {
        name: t.detach().float().cpu().numpy()
        for name, t in zip(names, flat)
        if isinstance(t, torch.Tensor)
    }
    return outputs, kept
