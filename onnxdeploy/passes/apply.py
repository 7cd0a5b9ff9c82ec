"""Load an ONNX file, run passes on it, verify the outputs did not change, write it atomically."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field

import onnx
import onnx_ir as ir

from onnxdeploy.atomic import refuse_overwrite
from onnxdeploy.data.synthetic import SYMBOLIC_DIM
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.generate.signature import LOGITS_TO_KEEP, example_shapes, is_kv_decoder
from onnxdeploy.inspect_model import count_macs, count_parameters
from onnxdeploy.onnx_io import (
    check_model_file,
    data_files,
    file_bytes,
    is_large,
    load_model,
    metadata,
    model_files,
    set_metadata,
    staged_model,
)
from onnxdeploy.output_diff import CompareResult
from onnxdeploy.passes.base import GraphPass
from onnxdeploy.passes.verify import verify_equivalent
from onnxdeploy.schemas import tagged

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassesResult:
    """What a pipeline of passes did to a model and how close the outputs stayed."""

    input: str
    output: str
    passes: dict  # pass name -> stats (counts of what it changed)
    layers: tuple  # LayerChange(layer, op, channels before, after) from prune-channels
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    bytes_before: int
    bytes_after: int
    comparison: CompareResult
    seconds: float
    notes: tuple = field(default_factory=tuple)
    kept: tuple = field(
        default_factory=tuple
    )  # KeptChannels from prune-channels: what stayed and why
    modified_by: tuple = field(
        default_factory=tuple
    )  # the passes whose result said they changed the model

    @property
    def modified(self) -> bool:
        return bool(self.modified_by)

    def to_json(self) -> dict:
        return tagged(
            "passes",
            {
                "input": self.input,
                "output": self.output,
                "passes": self.passes,
                "layers": [
                    {"layer": l, "op": op, "before": b, "after": a} for l, op, b, a in self.layers
                ],
                "params": {"before": self.params_before, "after": self.params_after},
                "macs": {"before": self.macs_before, "after": self.macs_after},
                "file_bytes": {"before": self.bytes_before, "after": self.bytes_after},
                "comparison": self.comparison.to_json(),
                "seconds": round(self.seconds, 3),
                "notes": list(self.notes),
                "kept": [asdict(k) for k in self.kept],
                "modified_by": list(self.modified_by),
            },
        )

    def explain(self) -> str:
        """Why channels were kept: one line per channel space that a rule pinned, most zero
        channels first."""
        if not self.kept:
            return "no channel space was pinned: every zero channel could be removed"
        return "\n".join(
            ["kept channels (layers: zero of total, reason):"] + [f"  {k}" for k in self.kept]
        )

    def __str__(self) -> str:
        lines = []
        if self.layers:
            from onnxdeploy.tables import text_table

            lines.append(
                text_table(
                    ["layer", "op", "before", "after"],
                    [[layer, op, str(b), str(a)] for layer, op, b, a in self.layers],
                )
            )
        for name, stats in self.passes.items():
            lines.append(
                f"{name}: "
                + (", ".join(f"{k} {v}" for k, v in stats.items()) if stats else "no change")
            )

        def ratio(before, after):
            return (
                f"{before:,} -> {after:,} ({after / before:.1%})"
                if before
                else f"{before:,} -> {after:,}"
            )

        lines += [
            f"parameters  {ratio(self.params_before, self.params_after)}",
            f"MACs/sample {ratio(self.macs_before, self.macs_after)}",
            f"file bytes  {ratio(self.bytes_before, self.bytes_after)}",
            f"outputs vs original: max abs {self.comparison.max_abs:.3e}, max rel "
            f"{self.comparison.max_rel:.3e} -> {'PASS' if self.comparison else 'FAIL'}",
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


DEFAULTED_INPUTS = (LOGITS_TO_KEEP,)


def _without_initializer_inputs(ir_model: ir.Model) -> ir.Model:
    """Initializers removed from the graph inputs (IR v3 style: exporters that listed every weight
    as an input), except inputs with a default on purpose (a decoder's ``logits_to_keep``)."""
    kept = [v for v in ir_model.graph.inputs if v.name in DEFAULTED_INPUTS]
    ir.passes.common.RemoveInitializersFromInputsPass()(ir_model)
    ir_model.graph.inputs.extend(kept)  # the pass removed every initializer input
    return ir_model


def to_ir(model: onnx.ModelProto, path: str) -> ir.Model:
    """Shape-inferred IR model with initializers removed from the graph inputs (IR v3 style)."""
    if is_large(model):  # onnx_ir's pass infers shapes with the weights set aside: no 2 GiB message
        ir_model = ir.from_proto(model)
        ir.passes.common.ShapeInferencePass()(ir_model)
        return _without_initializer_inputs(ir_model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise UserError(f"{path}: shape inference failed: {str(exc).splitlines()[0]}") from exc
    return _without_initializer_inputs(ir.from_proto(inferred))


def to_proto(model: ir.Model, *, legacy_inputs: bool) -> onnx.ModelProto:
    # unused nodes and initializers go first: listed as graph inputs (IR v3) they would count as
    # used
    ir.passes.common.RemoveUnusedNodesPass()(model)
    if all(
        node.domain in ("", "ai.onnx") for node in model.graph
    ):  # onnx cannot infer contrib ops' shapes
        ir.passes.common.ShapeInferencePass()(
            model
        )  # fresh shapes for the new channel counts (weights set aside)
    if legacy_inputs:
        ir.passes.common.AddInitializersToInputsPass()(model)
    return ir.to_proto(model)


def symbolic_sizes(model: onnx.ModelProto, shapes: dict | None) -> tuple[dict, list[str]]:
    """Sizes for symbolic non-batch dims in verification: a decoder's consistent past, tokens and
    mask (``generate.signature.example_shapes``), else the shapes the export recorded (its
    ``onnxdeploy.input_spec``), else SYMBOLIC_DIM; with a note saying which was used."""
    from onnxdeploy.data.specs import is_static, recorded_shapes, specs_from_onnx

    decoder = example_shapes(model.graph)
    if decoder and not shapes:  # past, new tokens and the mask over both must agree
        return decoder, [
            "a decoder with a KV cache: verified at a decode step (a past of 3 tokens and one "
            "new one, the attention mask over both)"
        ]
    recorded = recorded_shapes(model)
    notes = []
    for spec in specs_from_onnx(model):
        symbolic = [(axis, d) for axis, d in enumerate(spec.shape) if axis and not is_static(d)]
        if not symbolic or (shapes and spec.name in shapes):
            continue
        sizes = recorded.get(spec.name)
        for axis, dim in symbolic:
            size = sizes[axis] if sizes and axis < len(sizes) else SYMBOLIC_DIM
            source = "the export's recorded shape" if sizes else "a default (give shapes to choose)"
            notes.append(
                f"input '{spec.name}' dim {axis} ('{dim or '?'}') verified at {size}, {source}"
            )
    return recorded, notes


def _record_passes(model: onnx.ModelProto, stats: dict) -> onnx.ModelProto:
    """Append the passes just applied to the model's ``onnxdeploy.passes`` metadata (its
    history)."""
    import json

    try:
        history = json.loads(metadata(model).get("onnxdeploy.passes", "[]"))
    except ValueError:
        history = []
    return set_metadata(
        model,
        {
            "onnxdeploy.passes": json.dumps(
                history + [{"pass": name, "stats": s} for name, s in stats.items()]
            )
        },
    )


def run_passes(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    passes: list[GraphPass],
    *,
    rtol: float = 1e-5,
    shapes: dict | None = None,
    freeze: dict | None = None,
) -> PassesResult:
    """Apply ``passes`` in order; CheckFailed (nothing written) if the outputs moved beyond
    ``rtol``. ``freeze`` ({input: "value"}) first turns those inputs into constants and folds what
    they decide (``passes.freeze``); the result is then checked against the original fed those
    values."""
    from onnxdeploy.passes.freeze import FreezeInputsPass, frozen_values

    started = time.perf_counter()
    input_path, output_path = str(input_path), str(output_path)
    refuse_overwrite([output_path, *data_files(output_path)], model_files(input_path))
    original = load_model(input_path)
    fixed = frozen_values(original, freeze, input_path) if freeze else {}
    if fixed:
        passes = [FreezeInputsPass(fixed), *passes]
    legacy = original.ir_version < 4
    examples, notes = symbolic_sizes(original, shapes)
    model = to_ir(original, input_path)
    stats, layers, kept, modified_by = {}, [], [], []
    for graph_pass in passes:
        try:
            outcome = graph_pass(model)
        except ir.passes.PreconditionError as exc:
            raise UserError(f"{input_path}: {exc}") from exc
        model = outcome.model  # a functional pass returns a new model
        if outcome.modified:
            modified_by.append(graph_pass.name)
        stats[graph_pass.name] = dict(getattr(outcome, "stats", {}))
        notes += getattr(outcome, "notes", ())
        layers += getattr(outcome, "layers", ())
        kept += getattr(outcome, "kept", ())
    result_proto = _record_passes(to_proto(model, legacy_inputs=legacy), stats)
    del model
    params_before, params_after = count_parameters(original), count_parameters(result_proto)
    macs_before, macs_after = count_macs(original)[0], count_macs(result_proto)[0]
    del original
    # staged beside the output: checked and compared by path (any size), moved into place only if
    # both pass
    with staged_model(result_proto, output_path, external=is_kv_decoder(result_proto)) as staged:
        check_model_file(staged, output_path, full_check=True)
        comparison = verify_equivalent(
            input_path,
            str(staged),
            rtol=rtol,
            shapes=shapes,
            model_path=input_path,
            examples=examples,
            default_dim=SYMBOLIC_DIM,
            fixed=fixed,
        )
        result = PassesResult(
            input=input_path,
            output=output_path,
            passes=stats,
            layers=tuple(layers),
            params_before=params_before,
            params_after=params_after,
            macs_before=macs_before,
            macs_after=macs_after,
            bytes_before=file_bytes(input_path),
            bytes_after=file_bytes(staged),
            comparison=comparison,
            seconds=time.perf_counter() - started,
            kept=tuple(kept),
            notes=tuple(notes),
            modified_by=tuple(modified_by),
        )
        if not comparison:
            raise CheckFailed(
                f"{input_path}: outputs changed beyond rtol {rtol:g} (max abs "
                f"{comparison.max_abs:.3e}, max rel {comparison.max_rel:.3e}); nothing written to "
                f"{output_path}\n{comparison}",
                result=result,
            )
    return result


def prune_channels(
    input_path, output_path, *, rtol: float = 1e-5, shapes: dict | None = None
) -> PassesResult:
    """Remove exactly-zero channels from ``input_path`` and write the smaller model to
    ``output_path``."""
    from onnxdeploy.passes.channel_pruning import PruneChannelsPass

    return run_passes(input_path, output_path, [PruneChannelsPass()], rtol=rtol, shapes=shapes)
