"""torch -> ONNX with dynamic batch, metadata, the full ONNX checker and a parity check."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx

import onnxdeploy
from onnxdeploy.atomic import ensure_writable_dir, refuse_overwrite
from onnxdeploy.data.specs import default_input_names
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.exporter.parity import check_parity
from onnxdeploy.exporter.source import ModelSource, load_source
from onnxdeploy.onnx_io import check_model_file, file_bytes, keep_failed, staged_model
from onnxdeploy.output_diff import CompareResult
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)

EXPORTERS = ("auto", "dynamo", "torchscript")


@dataclass(frozen=True)
class ExportResult:
    """What was exported, how, and how close onnxruntime came to PyTorch."""

    output: str
    source: str
    exporter: str
    opset: int
    dynamic_batch: bool
    input_shapes: tuple[tuple[int, ...], ...]
    parity_batches: tuple[int, ...]
    parity: CompareResult
    file_bytes: int
    seconds: float
    fallback_reason: str = ""

    def to_json(self) -> dict:
        return {"output": self.output, "source": self.source, "exporter": self.exporter, "opset": self.opset,
                "dynamic_batch": self.dynamic_batch, "input_shapes": [list(s) for s in self.input_shapes],
                "parity_batches": list(self.parity_batches), "parity": self.parity.to_json(),
                "file_bytes": self.file_bytes, "seconds": round(self.seconds, 3),
                "fallback_reason": self.fallback_reason}

    def __str__(self) -> str:
        head = (f"exported {self.source} -> {self.output} ({self.file_bytes / 1024:.1f} KiB, opset {self.opset}, "
                f"{self.exporter} exporter, {'dynamic' if self.dynamic_batch else 'static'} batch, {self.seconds:.1f} s)")
        return f"{head}\nparity vs PyTorch at batch {', '.join(map(str, self.parity_batches))}:\n{self.parity}"


@contextlib.contextmanager
def _quiet_torch_exporter():
    """The dynamo exporter logs warnings about optional ops (torchvision) that do not concern the user."""
    names = ["torch.onnx", "torch.export", "torch._export", "torch.fx", "torch._dynamo", "onnxscript"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _example_inputs(shapes, dynamic: bool):
    import torch

    generator = torch.Generator().manual_seed(0)
    # Tracing at batch 1 lets torch.export specialise the batch to a constant; 2 keeps it symbolic.
    return tuple(torch.randn((2 if dynamic and s[0] == 1 else s[0], *s[1:]), generator=generator) for s in shapes)


def _export_dynamo(source: ModelSource, path: Path, names, dynamic: bool, opset: int | None) -> None:
    import torch

    batch = torch.export.Dim("batch")
    dynamic_shapes = tuple({0: batch} for _ in names[0]) if dynamic else None
    program = torch.onnx.export(source.module, _example_inputs(source.input_shapes, dynamic), dynamo=True,
                                input_names=names[0], output_names=names[1], dynamic_shapes=dynamic_shapes,
                                opset_version=opset, verbose=False, optimize=True)
    program.save(str(path), external_data=None)  # None: external data past 2 GiB, decided without serializing


def _export_torchscript(source: ModelSource, path: Path, names, dynamic: bool, opset: int | None) -> None:
    import torch

    axes = {n: {0: "batch"} for n in names[0] + names[1]} if dynamic else None
    torch.onnx.export(source.module, _example_inputs(source.input_shapes, dynamic), str(path), dynamo=False,
                      input_names=names[0], output_names=names[1], dynamic_axes=axes,
                      opset_version=opset or 17, do_constant_folding=True)


def _output_names(source: ModelSource) -> list[str]:
    import torch

    shapes = " and ".join("x".join(map(str, s)) for s in source.input_shapes)
    try:
        with torch.no_grad():
            out = source.module(*_example_inputs(source.input_shapes, False))
    except SystemExit as exc:
        raise UserError(f"{source.reference}: forward() called sys.exit({exc.code!r})") from exc
    except Exception as exc:  # the model cannot take inputs of these shapes: the user's input to fix
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{source.reference}: the model fails on inputs of shape {shapes} "
                        f"({type(exc).__name__}: {first}); check input_shape", param="input_shape") from exc
    count = len(out) if isinstance(out, (tuple, list)) else 1
    return ["logits"] if count == 1 else [f"output_{i}" for i in range(count)]


def _run_exporter(source, path, names, dynamic, opset, exporter, announce) -> tuple[str, str]:
    if exporter in ("auto", "dynamo"):
        try:
            with _quiet_torch_exporter():
                _export_dynamo(source, path, names, dynamic, opset)
            return "dynamo", ""
        except Exception as exc:
            if exporter == "dynamo":
                raise UserError(f"{source.reference}: the dynamo exporter failed: {type(exc).__name__}: "
                                f"{str(exc).strip().splitlines()[0][:300]}") from exc
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            announce(f"dynamo exporter failed ({reason}); falling back to the TorchScript exporter")
    try:
        with _quiet_torch_exporter():
            _export_torchscript(source, path, names, dynamic, opset)
    except Exception as exc:
        raise UserError(f"{source.reference}: the TorchScript exporter failed: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0][:300]}") from exc
    return "torchscript", reason if exporter == "auto" else ""


def _embed_metadata(path: Path, source: ModelSource, exporter: str, dynamic: bool) -> onnx.ModelProto:
    """The exported model (external data read in) with our metadata and producer set."""
    model = onnx.load(str(path))
    meta = {"onnxdeploy.version": onnxdeploy.__version__, "onnxdeploy.source": source.reference,
            "onnxdeploy.exporter": exporter,
            "onnxdeploy.input_spec": json.dumps({"shapes": [list(s) for s in source.input_shapes],
                                                 "dtype": "float32", "dynamic_batch": dynamic})}
    if source.checkpoint:
        meta["onnxdeploy.checkpoint"] = os.path.basename(source.checkpoint)
    kept = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in kept}, **meta})
    model.producer_name = "onnxdeploy"
    model.producer_version = onnxdeploy.__version__
    return model


def export(model: str, output: str | os.PathLike, *, checkpoint: str | None = None,
           input_shapes: list[tuple[int, ...]] | None = None, dynamic_batch: bool = True, opset: int | None = None,
           exporter: str = "auto", atol: float = 1e-4, rtol: float = 1e-4, module=None,
           announce=logger.warning, progress=silent) -> ExportResult:
    """Export ``model`` to ``output`` and verify it; CheckFailed (exit 1) when parity fails.

    ``module`` may be an already-built torch module (the run pipeline passes its trained
    model); ``model`` then only names it in the metadata. ``announce`` receives the
    messages a user must see, such as an exporter fallback; ``progress`` the steps as they start.
    """
    if exporter not in EXPORTERS:
        raise UserError(f"exporter '{exporter}': choose one of {', '.join(EXPORTERS)}", param="exporter")
    output = Path(output)
    factory_file = model.rpartition(":")[0] if ":" in model and model.rpartition(":")[0].endswith(".py") else None
    refuse_overwrite([output, output.with_name(output.stem + ".parity-failed.onnx")], [checkpoint, factory_file])
    ensure_writable_dir(output)
    started = time.perf_counter()
    if module is not None:
        if not input_shapes:
            raise UserError(f"{model}: input_shapes are required with a prebuilt module")
        source = ModelSource(module.eval(), list(input_shapes), model, checkpoint)
    else:
        source = load_source(model, checkpoint=checkpoint, input_shapes=input_shapes)
    names = (default_input_names(len(source.input_shapes)), _output_names(source))
    raw_dir = Path(tempfile.mkdtemp(prefix=f".{output.name}.export.", dir=output.resolve().parent))
    try:
        progress(f"exporting {source.reference} ({exporter} exporter)")
        used, fallback = _run_exporter(source, raw_dir / output.name, names, dynamic_batch, opset, exporter, announce)
        proto = _embed_metadata(raw_dir / output.name, source, used, dynamic_batch)
        opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        failed = output.with_name(output.stem + ".parity-failed.onnx")
        # staged beside the output under its final name (external data named for it), moved in only on success
        with staged_model(proto, output) as staged:
            progress("checking the exported model (onnx.checker, full check)")
            try:
                check_model_file(staged, output, full_check=True)
            except UserError as exc:
                raise CheckFailed(f"{output}: exported model {str(exc).partition(': ')[2]}") from exc
            batches = [1, 7] if dynamic_batch else [source.input_shapes[0][0]]
            progress(f"parity vs PyTorch at batch {', '.join(map(str, batches))}")
            parity = check_parity(source.module, str(staged), source.input_shapes, batches=batches, atol=atol,
                                  rtol=rtol)
            result = ExportResult(str(output), source.reference, used, opset_used, dynamic_batch,
                                  tuple(source.input_shapes), tuple(batches), parity, file_bytes(staged),
                                  time.perf_counter() - started, fallback)
            if not parity:
                keep_failed(staged, failed)
                raise CheckFailed(f"{output}: parity check failed (max abs {parity.max_abs:.3e}, max rel "
                                  f"{parity.max_rel:.3e}); nothing written to {output.name}, model kept as "
                                  f"{failed.name}\n{result}", result=result)
    finally:
        shutil.rmtree(raw_dir, ignore_errors=True)
    return result
