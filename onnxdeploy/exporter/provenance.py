"""What every exported graph says about where it came from, one definition for the plain graph
and the generative families: onnxdeploy's version, the model reference, the exporter's route, the
sha256 of the reference's files (a ``file.py:factory`` or ``hf:DIR``) and of a checkpoint; the
graph's producer is onnxdeploy."""

from __future__ import annotations

import os

import onnx

import onnxdeploy
from onnxdeploy.hashing import sha256_path
from onnxdeploy.onnx_io import set_metadata


def source_hash(reference: str) -> str | None:
    """sha256 of the model's source when it is a file or folder (``path.py:factory``,
    ``hf:DIR``); None for zoo names and importable modules (their code version is onnxdeploy's or
    the package's)."""
    path = reference[3:] if reference.startswith("hf:") else reference.split(":")[0]
    return sha256_path(path) if path and os.path.exists(path) else None


def provenance(reference: str, checkpoint: str | None = None) -> dict[str, str]:
    """The metadata saying where a graph came from, computed once per export (hashing an
    ``hf:DIR`` reads every weight file); each graph adds the route it took (``route``)."""
    meta = {"onnxdeploy.version": onnxdeploy.__version__, "onnxdeploy.source": reference}
    if checkpoint:
        meta["onnxdeploy.checkpoint"] = os.path.basename(checkpoint)
        meta["onnxdeploy.checkpoint_sha256"] = sha256_path(checkpoint) or ""
    digest = source_hash(reference)
    if digest:
        meta["onnxdeploy.source_sha256"] = digest
    return meta


def route(exporter: str) -> dict[str, str]:
    """The exporter a graph came out of (torch.export with fusions, TorchScript...)."""
    return {"onnxdeploy.exporter": exporter}


def stamp(model: onnx.ModelProto, meta: dict[str, str]) -> onnx.ModelProto:
    """``model`` (in place) with ``meta`` (``provenance`` and the export's own keys) merged into
    its metadata (other keys kept) and onnxdeploy as its producer."""
    set_metadata(model, meta)
    model.producer_name = "onnxdeploy"
    model.producer_version = onnxdeploy.__version__
    return model
