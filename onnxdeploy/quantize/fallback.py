"""Rank nodes by the error quantization puts on their outputs (onnxruntime's qdq_loss_debug),
so the accuracy loop can keep the worst ones in fp32."""

from __future__ import annotations

import tempfile
from pathlib import Path

from onnxdeploy.onnx_io import load_model


def worst_nodes(float_path: str, qdq_path: str, reader) -> list[str]:
    """Node names of the float model, worst first (lowest SNR between fp32 and QDQ activations)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory() as tmp:
        aug_float, aug_qdq = str(Path(tmp) / "f.onnx"), str(Path(tmp) / "q.onnx")
        modify_model_output_intermediate_tensors(float_path, aug_float)
        modify_model_output_intermediate_tensors(qdq_path, aug_qdq)
        reader.rewind()
        float_acts = collect_activations(aug_float, reader)
        reader.rewind()
        qdq_acts = collect_activations(aug_qdq, reader)
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    producer = {
        out: node.name
        for node in load_model(float_path, check=False).graph.node
        for out in node.output
    }
    ranked = sorted(
        (err.get("xmodel_err", float("inf")), name)
        for name, err in errors.items()
        if name in producer
    )
    seen, order = set(), []
    for _, tensor in ranked:
        node = producer[tensor]
        if node not in seen:
            seen.add(node)
            order.append(node)
    return order
