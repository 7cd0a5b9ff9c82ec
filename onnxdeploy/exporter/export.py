"""torch -> ONNX with dynamic batch, metadata, the full ONNX checker and a parity check."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from onnxdeploy.atomic import ensure_writable_dir, refuse_overwrite, staging_dir
from onnxdeploy.data.specs import default_input_names
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.exporter.inputs import ExportInput, float_inputs
from onnxdeploy.models.outputs import is_tensor, flat_module, flatten_outputs
from onnxdeploy.exporter.parity import check_parity
from onnxdeploy.exporter.generative_task import failed_name
from onnxdeploy.exporter.provenance import provenance, route, stamp
from onnxdeploy.exporter.plain_tasks import call, example_inputs, plain_task, token_bound
from onnxdeploy.exporter.source import ModelSource, files_read, load_source
from onnxdeploy.onnx_io import (
    check_model_file,
    data_files,
    default_opset,
    file_bytes,
    load_model,
    move_model,
    staged_model,
)
from onnxdeploy.output_diff import CompareResult
from onnxdeploy.progress import silent
from onnxdeploy.schemas import tagged

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
    inputs: tuple = ()  # ExportInput: name, dtype, example shape, dynamic axes
    task: str = "custom"  # the plain graph's family (plain_tasks): vision, detection, encoder...

    def to_json(self) -> dict:
        return tagged(
            "export",
            {
                "output": self.output,
                "source": self.source,
                "exporter": self.exporter,
                "opset": self.opset,
                "dynamic_batch": self.dynamic_batch,
                "input_shapes": [list(s) for s in self.input_shapes],
                "parity_batches": list(self.parity_batches),
                "parity": self.parity.to_json(),
                "file_bytes": self.file_bytes,
                "seconds": round(self.seconds, 3),
                "fallback_reason": self.fallback_reason,
                "inputs": [i.to_json() for i in self.inputs],
                "task": self.task,
            },
        )

    def __str__(self) -> str:
        batch = "dynamic" if self.dynamic_batch else "static"
        facts = (
            f"{self.file_bytes / 1024:.1f} KiB",
            f"opset {self.opset}",
            f"{self.exporter} exporter",
            f"{batch} batch",
            f"{self.seconds:.1f} s",
        )
        head = f"exported {self.source} ({self.task}) -> {self.output} ({', '.join(facts)})"
        batches = ", ".join(map(str, self.parity_batches))
        return f"{head}\nparity vs PyTorch at batch {batches}:\n{self.parity}"


@contextlib.contextmanager
def quiet_torch_exporter():
    """The dynamo exporter logs warnings about optional ops (torchvision) that do not concern the
    user."""
    names = [
        "torch.onnx",
        "torch.export",
        "torch._export",
        "torch.fx",
        "torch._dynamo",
        "onnxscript",
    ]
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


def _export_dynamo(
    source: ModelSource, path: Path, names, dynamic: bool, opset: int | None
) -> None:
    import torch

    examples = example_inputs(source, dynamic)
    dims: dict = {}

    def dim(
        axis: int, length: int
    ):  # inputs that share an axis length share its symbol (ids and mask)
        return dims.setdefault(
            (axis, length), torch.export.Dim("batch" if axis == 0 else f"dim{axis}_{length}")
        )

    dynamic_shapes = tuple(
        {axis: dim(axis, int(t.shape[axis])) for axis in ((0,) if dynamic else ()) + spec.dynamic}
        for spec, t in zip(source.inputs, examples)
    )
    if not any(dynamic_shapes):
        dynamic_shapes = None
    program = torch.onnx.export(
        source.module,
        examples,
        dynamo=True,
        input_names=names[0],
        output_names=names[1],
        dynamic_shapes=dynamic_shapes,
        opset_version=opset,
        verbose=False,
        optimize=True,
    )
    program.save(
        str(path), external_data=None
    )  # None: external data past 2 GiB, decided without serializing


def _export_torchscript(
    source: ModelSource, path: Path, names, dynamic: bool, opset: int | None
) -> None:
    import torch

    axes = {
        spec.name: {
            **({0: "batch"} if dynamic else {}),
            **{a: f"{spec.name}_{a}" for a in spec.dynamic},
        }
        for spec in source.inputs
    }
    axes.update({n: {0: "batch"} for n in names[1]} if dynamic else {})
    torch.onnx.export(
        source.module,
        example_inputs(source, dynamic),
        str(path),
        dynamo=False,
        input_names=names[0],
        output_names=names[1],
        dynamic_axes={k: v for k, v in axes.items() if v},
        opset_version=opset or 17,
        do_constant_folding=True,
    )


def _output_names(source: ModelSource) -> tuple[list[str], bool]:
    """(output names, whether forward's result needs flattening: anything but a tensor or a flat
    tuple)."""
    import torch

    shapes = " and ".join("x".join(map(str, s)) for s in source.input_shapes)
    try:
        with torch.no_grad():
            out = call(source, example_inputs(source, False))
    except SystemExit as exc:
        raise UserError(f"{source.reference}: forward() called sys.exit({exc.code!r})") from exc
    except (
        Exception
    ) as exc:  # the model cannot take inputs of these shapes: the user's input to fix
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"{source.reference}: the model fails on inputs of shape {shapes} "
            f"({type(exc).__name__}: {first}); check input_shape",
            param="input_shape",
        ) from exc
    names = [name for name, _ in flatten_outputs(out)]
    if not names:
        raise UserError(
            f"{source.reference}: forward() returned {type(out).__name__}, which holds no tensor"
        )
    flat = is_tensor(out) or (isinstance(out, (tuple, list)) and all(is_tensor(t) for t in out))
    return (
        ["logits"] if len(names) == 1 else names
    ), not flat  # one tensor, bare or in a 1-tuple: logits


def _run_exporter(source, path, names, dynamic, opset, exporter, announce) -> tuple[str, str]:
    if exporter in ("auto", "dynamo"):
        try:
            with quiet_torch_exporter():
                _export_dynamo(source, path, names, dynamic, opset)
            return "dynamo", ""
        except Exception as exc:
            if exporter == "dynamo":
                raise UserError(
                    f"{source.reference}: the dynamo exporter failed: {type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0][:300]}"
                ) from exc
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            announce(f"dynamo exporter failed ({reason}); falling back to the TorchScript exporter")
    try:
        with quiet_torch_exporter():
            _export_torchscript(source, path, names, dynamic, opset)
    except Exception as exc:
        raise UserError(
            f"{source.reference}: the TorchScript exporter failed: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0][:300]}"
        ) from exc
    return "torchscript", reason if exporter == "auto" else ""


def _strip_wrapper_prefix(model: onnx.ModelProto, prefix: str = "inner.") -> None:
    """Weight and node names as the author wrote them, without the flattening wrapper's
    ``inner.``."""
    graph = model.graph
    taken = (
        {v for n in graph.node for v in n.output}
        | {t.name for t in graph.initializer}
        | {i.name for i in graph.input}
    )
    renames = {
        name: name[len(prefix) :]
        for name in taken
        if name.startswith(prefix) and name[len(prefix) :] not in taken
    }
    for tensor in graph.initializer:
        tensor.name = renames.get(tensor.name, tensor.name)
    for node in graph.node:
        node.input[:] = [renames.get(v, v) for v in node.input]
        node.output[:] = [renames.get(v, v) for v in node.output]
        node.name = (
            node.name.replace("/inner/", "/", 1) if node.name.startswith("/inner/") else node.name
        )
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)


def _embed_metadata(
    path: Path, source: ModelSource, exporter: str, dynamic: bool
) -> onnx.ModelProto:
    """The exported model (external data read in) with its provenance and input spec."""
    spec = {
        "shapes": [list(s) for s in source.input_shapes],
        "dtype": np.dtype(source.inputs[0].dtype).name,
        "dynamic_batch": dynamic,
        "inputs": [i.to_json() for i in source.inputs],
    }
    meta = provenance(source.reference, source.checkpoint) | route(exporter)
    return stamp(load_model(path, check=False), meta | {"onnxdeploy.input_spec": json.dumps(spec)})


MIN_OPSET = 7  # the oldest opset onnxruntime runs


def check_opset(opset: int | None) -> None:
    """UserError (exit 2) for an opset outside what this onnx knows, before any work."""
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not MIN_OPSET <= opset <= newest:
        raise UserError(
            f"opset {opset}: this onnx {onnx.__version__} knows opsets {MIN_OPSET} to {newest}",
            param="opset",
        )


def refuse_export_overwrite(model: str, output: str | Path, checkpoint: str | None) -> Path:
    """Exit 2 when anything ``export`` may write (the model, its parity-failed copy, their external
    data) would replace a file the model reference reads; returns the parity-failed path."""
    output = Path(output)
    failed = failed_name(output)
    refuse_overwrite([output, failed, *data_files(output, failed)], files_read(model, checkpoint))
    return failed


# what a generative task does not take: its inputs, axes and exporter are its own (each refused
# when it differs from export_plain's default)
_PLAIN_ONLY = ("input_shapes", "inputs", "dynamic_batch", "exporter", "atol", "rtol", "module")


def export(
    model: str,
    output: str | os.PathLike,
    *,
    task: str = "auto",
    fuse: bool = True,
    checkpoint: str | None = None,
    input_shapes: list[tuple[int, ...]] | None = None,
    inputs: list[ExportInput] | None = None,
    dynamic_batch: bool = True,
    opset: int | None = None,
    exporter: str = "auto",
    atol: float = 1e-4,
    rtol: float = 1e-4,
    module=None,
    announce=logger.warning,
    progress=silent,
):
    """Export ``model`` to ``output`` as ``task`` (``exporter.tasks``; ``auto``: a Hugging Face
    causal LM gets its KV cache, an encoder-decoder its encoder and decoder-with-past graphs, any
    other model, or a prebuilt ``module``, its plain graph), exactly as ``onnxdeploy export``
    does. A generative task returns its own result (``DecoderExport``, ``Seq2SeqExport``,
    verified by generating) and refuses the plain graph's options by name; ``fuse`` (causal LMs):
    onnxruntime's fused ops, False plain ONNX ops. Otherwise ``export_plain``."""
    from onnxdeploy.exporter import tasks

    task = "default" if module is not None and task == "auto" else tasks.resolve_task(model, task)
    plain = dict(
        input_shapes=input_shapes,
        inputs=inputs,
        dynamic_batch=dynamic_batch,
        exporter=exporter,
        atol=atol,
        rtol=rtol,
        module=module,
    )
    if task in tasks.GENERATIVE:
        defaults = inspect.signature(export_plain).parameters
        for name in _PLAIN_ONLY:
            if plain[name] != defaults[name].default:
                raise UserError(
                    f"{name} does not apply to task {task}: its inputs, dynamic axes and exporter "
                    "are the task's own, and its parity is greedy tokens step by step",
                    param=name,
                )
        return tasks.export_generative(
            model, output, task, checkpoint=checkpoint, opset=opset, fuse=fuse, progress=progress
        )
    if not fuse:
        raise UserError(
            f"fuse=False applies to causal LMs (text-generation-with-past), not {task}",
            param="fuse",
        )
    if task == "feature-extraction":
        refuse_export_overwrite(model, output, checkpoint)  # before the weights load
        plain["module"], named = tasks.feature_extractor(model)
        plain["inputs"] = inputs or named
    return export_plain(
        model,
        output,
        checkpoint=checkpoint,
        opset=opset,
        announce=announce,
        progress=progress,
        **plain,
    )


def export_plain(
    model: str,
    output: str | os.PathLike,
    *,
    checkpoint: str | None = None,
    input_shapes: list[tuple[int, ...]] | None = None,
    inputs: list[ExportInput] | None = None,
    dynamic_batch: bool = True,
    opset: int | None = None,
    exporter: str = "auto",
    atol: float = 1e-4,
    rtol: float = 1e-4,
    module=None,
    announce=logger.warning,
    progress=silent,
) -> ExportResult:
    """Export ``model``'s plain graph to ``output`` and verify it by its outputs; CheckFailed
    (exit 1) when parity fails.

    ``input_shapes`` are float32 inputs passed to forward in order; ``inputs`` (ExportInput: name,
    dtype, example shape, dynamic axes, optional example arrays) are passed by name. Whatever
    forward returns (a tensor, tuple, dict, namedtuple or ModelOutput) becomes named outputs.
    ``module`` may be an already-built torch module (the run pipeline passes its trained
    model); ``model`` then only names it in the metadata. ``announce`` receives the
    messages a user must see, such as an exporter fallback; ``progress`` the steps as they start.
    """
    if exporter not in EXPORTERS:
        raise UserError(
            f"exporter '{exporter}': choose one of {', '.join(EXPORTERS)}", param="exporter"
        )
    output = Path(output)
    check_opset(opset)
    failed = refuse_export_overwrite(model, output, checkpoint)
    ensure_writable_dir(output)
    started = time.perf_counter()
    if inputs and input_shapes:
        raise UserError("give inputs or input_shapes, not both", param=("inputs", "input_shapes"))
    if module is not None:
        if not input_shapes and not inputs:
            raise UserError(f"{model}: input_shapes are required with a prebuilt module")
        shapes = [tuple(i.shape) for i in inputs] if inputs else list(input_shapes)
        source = ModelSource(
            module.eval(), shapes, model, checkpoint, list(inputs or []), bool(inputs)
        )
    else:
        source = load_source(model, checkpoint=checkpoint, input_shapes=input_shapes, inputs=inputs)
    if not source.inputs:
        source.inputs = float_inputs(
            source.input_shapes, default_input_names(len(source.input_shapes))
        )
    output_names, structured = _output_names(source)
    task = plain_task(source, output_names)  # vision, detection, encoder or custom
    dynamic_batch, note = task.dynamic_batch(source, dynamic_batch)
    if note:
        announce(note)
    names = ([i.name for i in source.inputs], output_names)
    wrapped = structured or source.by_name
    if (
        wrapped
    ):  # exporters and the parity check see the outputs flattened and the inputs by position
        source = dataclasses.replace(
            source, module=flat_module(source.module, names[0] if source.by_name else None)
        )
    # the exporter's raw output, beside the output (same filesystem), removed whatever happens
    with staging_dir(output) as raw_dir:
        progress(f"exporting {source.reference} ({exporter} exporter)")
        used, fallback = _run_exporter(
            source, raw_dir / output.name, names, dynamic_batch, opset, exporter, announce
        )
        proto = _embed_metadata(raw_dir / output.name, source, used, dynamic_batch)
        if wrapped:
            _strip_wrapper_prefix(proto)
        opset_used = default_opset(proto)
        if opset is not None and opset_used != opset:
            announce(
                f"{output}: asked for opset {opset}; the {used} exporter wrote opset {opset_used}"
            )
        # staged beside the output under its final name (external data named for it), moved in only
        # on success
        with staged_model(proto, output) as staged:
            progress("checking the exported model (onnx.checker, full check)")
            try:
                check_model_file(staged, output, full_check=True)
            except UserError as exc:
                raise CheckFailed(
                    f"{output}: exported model {str(exc).partition(': ')[2]}"
                ) from exc
            batches = task.parity_batches(source, dynamic_batch)
            cases = task.parity_cases(source, dynamic_batch)
            progress(
                f"parity vs PyTorch at batch {', '.join(map(str, batches))}"
                + (
                    f" and {len(cases) - len(batches)} more length(s)"
                    if len(cases) > len(batches)
                    else ""
                )
            )
            parity = check_parity(
                source.module,
                str(staged),
                cases,
                atol=atol,
                rtol=rtol,
                int_high=token_bound(getattr(source.module, "inner", source.module)),
                origin=str(output),
            )
            result = ExportResult(
                str(output),
                source.reference,
                used,
                opset_used,
                dynamic_batch,
                tuple(source.input_shapes),
                tuple(batches),
                parity,
                file_bytes(staged),
                time.perf_counter() - started,
                fallback,
                tuple(source.inputs),
                task.name,
            )
            if not parity:
                move_model(staged, failed)
                raise CheckFailed(
                    f"{output}: parity check failed (max abs {parity.max_abs:.3e}, max rel "
                    f"{parity.max_rel:.3e}); nothing written to {output.name}, model kept as "
                    f"{failed.name}\n{result}",
                    result=result,
                )
    return result
