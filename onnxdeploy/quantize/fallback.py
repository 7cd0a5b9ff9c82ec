"""Rank nodes by the error quantization puts on their outputs (onnxruntime's qdq_loss_debug),
so the accuracy loop can keep the worst ones in fp32."""

from __future__ import annotations

from onnxdeploy.atomic import scratch_dir
from onnxdeploy.onnx_io import load_model


class FirstBatches:
    """The first ``count`` batches of ``reader``. ``qdq_loss_debug`` keeps every intermediate
    activation of every batch it is given, for both models (ResNet-50 on 512 images: 24 GB and an
    OOM kill), so the ranking reads only as many batches as one calibration chunk holds within the
    memory budget (the reader's ``stride``)."""

    def __init__(self, reader, count: int) -> None:
        self.reader, self.left = reader, count

    def __iter__(self):
        return iter(self.get_next, None)

    def get_next(self):
        if self.left <= 0:
            return None
        self.left -= 1
        return self.reader.get_next()


def worst_nodes(float_path: str, qdq_path: str, reader) -> list[str]:
    """Node names of the float model, worst first (lowest SNR between fp32 and QDQ activations),
    ranked on the first chunk of calibration batches (``FirstBatches``)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with scratch_dir("onnxdeploy-fallback-") as tmp:
        aug_float, aug_qdq = str(tmp / "f.onnx"), str(tmp / "q.onnx")
        modify_model_output_intermediate_tensors(float_path, aug_float)
        modify_model_output_intermediate_tensors(qdq_path, aug_qdq)
        chunk = max(1, getattr(reader, "stride", None) or 1)
        reader.rewind()
        float_acts = collect_activations(aug_float, FirstBatches(reader, chunk))
        reader.rewind()
        qdq_acts = collect_activations(aug_qdq, FirstBatches(reader, chunk))
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
