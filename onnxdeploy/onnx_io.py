"""Load and save ONNX files safely, with one-line errors that name the file.

External data is only read from inside the model's own folder: a model file from an
untrusted source must not make us read ``/etc/passwd`` or ``../../secrets``.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from onnxdeploy.atomic import atomic_path
from onnxdeploy.errors import UserError

# Protobuf cannot serialise a message over 2 GiB; past that the weights go to a side file.
PROTOBUF_LIMIT = 2 * 1024**3 - 64 * 1024**2


def _external_tensors(model: onnx.ModelProto):
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if onnx.external_data_helper.uses_external_data(tensor):
            yield tensor


def _check_external_locations(model: onnx.ModelProto, path: Path) -> None:
    base = path.resolve().parent
    for tensor in _external_tensors(model):
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (base / location).resolve()
        if os.path.isabs(location) or base not in target.parents:
            raise UserError(
                f"{path}: tensor '{tensor.name}' points to external data '{location}' outside "
                "the model's folder; refusing to read it"
            )
        if not target.is_file():
            raise UserError(f"{path}: external data file '{location}' for tensor '{tensor.name}' is missing")


def check_external_data(path: str | os.PathLike) -> None:
    """Refuse a model whose external data lies outside its folder or is missing (before onnxruntime reads it)."""
    load_model(path, check=False, load_external=False)


def load_model(path: str | os.PathLike, *, check: bool = True, full_check: bool = False,
               load_external: bool = True) -> onnx.ModelProto:
    """Load an ONNX model; UserError (exit 2) when the file is missing, not ONNX, or invalid.

    External data is checked (inside the model's folder, present) and, with ``load_external``, read.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on garbage input
        raise UserError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]})") from exc
    if not model.graph.node and not model.graph.output:
        raise UserError(f"{path}: not an ONNX model (no graph in the file)")
    _check_external_locations(model, path)
    if load_external and any(True for _ in _external_tensors(model)):
        onnx.load_external_data_for_model(model, str(path.resolve().parent))
    if check:
        check_model(model, path, full_check=full_check)
    return model


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds: graph inputs that are not initializers (IR v3 lists both)."""
    initializers = {t.name for t in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def check_model(model: onnx.ModelProto, path: str | os.PathLike = "<model>", *, full_check: bool = False) -> None:
    """Run ``onnx.checker``; its first error line becomes a UserError naming ``path``."""
    try:
        if model.ByteSize() > PROTOBUF_LIMIT:
            return  # the checker cannot take a >2 GiB proto in memory; checked by path on save
        onnx.checker.check_model(model, full_check=full_check)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise UserError(f"{path}: fails the ONNX checker: {first}") from exc
    except onnx.shape_inference.InferenceError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: fails ONNX shape inference: {first}") from exc


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Save atomically as one self-contained file, or with external data beside it past 2 GiB."""
    path = Path(path)
    large = model.ByteSize() > PROTOBUF_LIMIT
    with atomic_path(path, suffix=".onnx") as tmp:
        if large:
            data_name = path.name + ".data"
            onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
        else:
            onnx.save_model(model, str(tmp))
    return path
