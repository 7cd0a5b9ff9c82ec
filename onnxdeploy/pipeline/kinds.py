"""Which recipe a run's model gets: the one place that asks, for ``run MODEL``'s plan and for every
stage of the run (read without loading any weights)."""

from __future__ import annotations

# resolve_task's generative tasks -> the kind of model they are
_TASK_KINDS = {
    "text-generation-with-past": "decoder",
    "text2text-generation-with-past": "encoder-decoder",
}


def model_kind(model: str) -> str:
    """``decoder`` for a causal LM (an ``hf:`` one, or an ONNX graph with a KV cache),
    ``encoder-decoder`` for an ``hf:`` one, else ``default`` (zoo, factories, other ONNX files;
    a path that is not there is ``default`` too: whoever loads it names the problem)."""
    from onnxdeploy.exporter.source import is_onnx

    if is_onnx(model):
        from onnxdeploy.generate.signature import is_kv_decoder

        return "decoder" if is_kv_decoder(model) else "default"
    from onnxdeploy.exporter.hf import is_hf

    if not is_hf(model):
        return "default"
    from onnxdeploy.exporter.tasks import resolve_task

    return _TASK_KINDS.get(resolve_task(model, "auto"), "default")


__all__ = ["model_kind"]
