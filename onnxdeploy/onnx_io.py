"""Load and save ONNX files safely, with one-line errors that name the file.

External data is only read from inside the model's own folder: a model file from an
untrusted source must not make us read ``/etc/passwd`` or ``../../secrets``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from pathlib import Path
from typing import Iterator

import onnx

from onnxdeploy.atomic import publish, staging_dir
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
            raise UserError(
                f"{path}: external data file '{location}' for tensor '{tensor.name}' is missing"
            )


def check_external_data(path: str | os.PathLike) -> None:
    """Refuse a model whose external data lies outside its folder or is missing (before onnxruntime
    reads it)."""
    load_model(path, check=False, load_external=False)


def load_model(
    path: str | os.PathLike,
    *,
    check: bool = True,
    full_check: bool = False,
    load_external: bool = True,
) -> onnx.ModelProto:
    """Load an ONNX model; UserError (exit 2) when the file is missing, not ONNX, or invalid.

    External data is checked (inside the model's folder, present) and, with ``load_external``, read.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an ONNX file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on garbage input
        raise UserError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:120]})"
        ) from exc
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


def tensor_bytes(model: onnx.ModelProto) -> int:
    """Bytes of tensor data in memory (raw and typed fields), without serializing the model:
    protobuf
    cannot even measure a message past 2 GiB (``ByteSize()`` itself fails)."""
    total = 0
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        total += len(tensor.raw_data)
        for name in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            total += len(getattr(tensor, name)) * 8
    return total


STUB_BYTES = 4096  # tensors larger than this are weights, never shape data


def without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large tensors keep their name, type and dims but not their bytes
    (stubs marked external): what shape inference needs, at a fraction of the cost, since onnx
    serialises the whole model, weights included, to infer shapes."""
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph, source = light.graph, model.graph
    graph.node.extend(source.node)
    graph.input.extend(source.input)
    graph.output.extend(source.output)
    graph.value_info.extend(source.value_info)
    for tensor in source.initializer:
        if tensor.ByteSize() <= STUB_BYTES:
            graph.initializer.append(tensor)
            continue
        stub = graph.initializer.add()
        stub.name, stub.data_type = tensor.name, tensor.data_type
        stub.dims.extend(tensor.dims)
        stub.data_location = onnx.TensorProto.EXTERNAL
        stub.external_data.add(key="location", value="(weights left out)")
    return light


def inferred_values(model: onnx.ModelProto) -> list[onnx.ValueInfoProto] | None:
    """The graph's intermediate values and outputs with the types and shapes onnx shape inference
    gives them (run on ``without_weights(model)``); None when inference fails."""
    try:
        inferred = onnx.shape_inference.infer_shapes(without_weights(model), strict_mode=False)
    except Exception:  # noqa: BLE001 - each caller says what it does without shapes
        return None
    return [*inferred.graph.value_info, *inferred.graph.output]


def static_dims(value: onnx.ValueInfoProto) -> list[int]:
    """A value's dims with symbolic or unknown ones taken as 1 ([] without a shape)."""
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
        for d in value.type.tensor_type.shape.dim
    ]


def is_large(model: onnx.ModelProto) -> bool:
    """Too big for one protobuf message: saved with external data, checked and run by path."""
    return tensor_bytes(model) > PROTOBUF_LIMIT


def external_files(path: str | os.PathLike) -> list[str]:
    """The external data files a model file references, as locations relative to its folder
    (sorted)."""
    model = onnx.load(str(path), load_external_data=False)
    return sorted(
        {{e.key: e.value for e in t.external_data}["location"] for t in _external_tensors(model)}
    )


def model_files(path: str | os.PathLike) -> list[Path]:
    """What reading the model file ``path`` reads: it and the external data files it references
    (the file alone when it cannot be read: whoever loads it names the problem)."""
    try:
        return [Path(path), *(Path(path).parent / f for f in external_files(path))]
    except Exception:  # noqa: BLE001 - not ONNX, or not there
        return [Path(path)]


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) opset the model imports; 0 when none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def data_files(*paths: str | os.PathLike) -> list[Path]:
    """Where saving each model path may put its external data (``<name>.data`` beside it): side
    outputs that, like the model file, must not replace an input."""
    return [Path(p).with_name(Path(p).name + ".data") for p in paths]


def file_bytes(path: str | os.PathLike) -> int:
    """Size on disk of a model file and the external data files it references (inside its
    folder)."""
    path = Path(path)
    files = {(path.parent / location).resolve() for location in external_files(path)}
    return path.stat().st_size + sum(f.stat().st_size for f in files if f.is_file())


def check_model(
    model: onnx.ModelProto, path: str | os.PathLike = "<model>", *, full_check: bool = False
) -> None:
    """Run ``onnx.checker`` on a model in memory (a large one is checked by path when saved)."""
    if is_large(model):
        return
    _checked(lambda: onnx.checker.check_model(model, full_check=full_check), path)


def check_model_file(
    file: str | os.PathLike, path: str | os.PathLike, *, full_check: bool = False
) -> None:
    """Run ``onnx.checker`` on a saved file (any size, external data included); errors name
    ``path``."""
    _checked(lambda: onnx.checker.check_model(str(file), full_check=full_check), path)


_UNREGISTERED = re.compile(r"No Op registered for (\w+) with domain_version")


@functools.lru_cache(maxsize=None)
def _onnxruntime_onnx_domain_ops() -> frozenset[str]:
    """Ops onnxruntime registers in the ONNX domain that onnx itself does not define
    (SimplifiedLayerNormalization, which its transformer optimizer and onnxscript's ort_fusions
    write)."""
    from onnxruntime.capi import _pybind_state

    kernels = _pybind_state.get_all_opkernel_def()
    return frozenset(
        k.op_name for k in kernels if k.domain in ("", "ai.onnx") and not onnx.defs.has(k.op_name)
    )


def _checked(check, path) -> None:
    """The checker's first error line becomes a UserError naming ``path``. A model holding one of
    onnxruntime's own ops in the ONNX domain passes: onnx's checker stops at the op it does not
    know, and onnxruntime, which validates the graph as it loads it, runs it."""
    try:
        check()
    except onnx.checker.ValidationError as exc:
        unregistered = _UNREGISTERED.search(str(exc))
        if unregistered and unregistered.group(1) in _onnxruntime_onnx_domain_ops():
            return
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise UserError(f"{path}: fails the ONNX checker: {first}") from exc
    except onnx.shape_inference.InferenceError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: fails ONNX shape inference: {first}") from exc


@contextlib.contextmanager
def staged_model(
    model: onnx.ModelProto, path: str | os.PathLike, *, external: bool = False
) -> Iterator[Path]:
    """Write ``model`` under a temporary folder beside ``path`` and yield the staged file, to be
    checked and run by path; on success move it (and ``<name>.data`` for a large model, whose
    location names the final file) into place, data first; on error leave nothing behind and
    ``path`` untouched.

    A large model's tensors are moved to external data in ``model`` itself while saving, and with
    ``external`` any model's (a decoder's, as onnxruntime-genai and optimum write them: onnxruntime
    then reads each tensor from the data file instead of parsing them all into one message it holds
    beside its own copies, ~100 MB less resident for a 56M-parameter decoder, measured).
    """
    path = Path(path)
    with staging_dir(path) as stage:
        staged = stage / path.name
        write_model(model, staged, external=external)
        yield staged
        move_model(staged, path)


def write_model(model: onnx.ModelProto, path: Path, *, external: bool = False) -> None:
    """Save ``model`` to ``path`` (a staging folder's file, not yet published): its tensors in
    ``<name>.data`` beside it when it is large or with ``external``."""
    large = external or is_large(model)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


def move_model(staged: Path, target: Path) -> None:
    """Move a model file staged by ``write_model`` to ``target`` (under the umask's modes), its
    external data (``<staged>.data``) first, renamed ``<target>.data`` and pointed to when the
    name changes (a parity-failed copy); a ``<target>.data`` that the model it replaces read, and
    this one does not, is removed. A self-contained model is not parsed (hundreds of MB)."""
    target = Path(target)
    data, data_name = staged.with_name(staged.name + ".data"), target.name + ".data"
    stale = not data.is_file() and (target.parent / data_name).is_file() and _uses_external(target)
    if data.is_file():
        publish(data, target.parent / data_name)
        if data.name != data_name:
            model = onnx.load(str(staged), load_external_data=False)  # the weights stay out
            for tensor in _external_tensors(model):
                for entry in tensor.external_data:
                    if entry.key == "location":
                        entry.value = data_name
            onnx.save_model(model, str(staged))
    publish(staged, target)
    if stale:  # the model this one replaced kept its weights in <name>.data; nothing reads it now
        (target.parent / data_name).unlink(missing_ok=True)


def _uses_external(path: Path) -> bool:
    try:
        return any(True for _ in _external_tensors(onnx.load(str(path), load_external_data=False)))
    except Exception:  # an unreadable old output holds nothing we must keep
        return False


def save_model(model: onnx.ModelProto, path: str | os.PathLike, *, external: bool = False) -> Path:
    """Save atomically as one self-contained file, or with external data beside it past 2 GiB or
    with ``external`` (``staged_model``)."""
    with staged_model(model, path, external=external) as staged:
        if any(True for _ in _external_tensors(model)):  # large: in memory it could not be checked
            check_model_file(staged, path)
    return Path(path)


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(model: onnx.ModelProto, updates: dict[str, str]) -> onnx.ModelProto:
    """The model with ``updates`` merged into its metadata_props (other keys kept, one entry per
    key)."""
    merged = {**metadata(model), **updates}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, merged)
    return model
