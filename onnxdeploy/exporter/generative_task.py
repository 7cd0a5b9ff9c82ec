"""One export for every generative family (a causal decoder with its KV cache, an encoder-decoder):
the family says which graphs it has (``Graph``: the module that computes each, example inputs,
input and output names, named dynamic axes), what each graph's metadata and the manifest beside
them hold, and how its parity is checked; ``GenerativeTask.export`` does the rest once for all.

Every graph is traced by ``decoder_graph.export_graph`` (torch.export with onnxruntime's fused ops,
or TorchScript's plain ops), written and checked in a staging folder beside the output, and the
family's generation parity runs on the staged files. Tokens equal to ``transformers``': the files
move to their names (the manifest, which names the graphs, last). Tokens that differ: the files go
to ``<stem>.parity-failed.*`` instead and the export fails (exit 1) with nothing under the output's
names. Whatever happens, the staging folder goes (an interrupt included)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from onnxdeploy.atomic import refuse_overwrite, scratch_dir, staging_dir, write_json
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.exporter.decoder_graph import DecoderGraph, export_graph
from onnxdeploy.exporter.generation_parity import PARITY_STEPS, GenerationParity
from onnxdeploy.exporter.provenance import provenance, route, stamp
from onnxdeploy.onnx_io import check_model_file, data_files, move_model, write_model
from onnxdeploy.progress import silent

MANIFEST = "manifest"  # the role of a family's JSON file, when it writes one


@dataclass(frozen=True)
class Graph:
    """One graph of a generative export. ``role`` names its file (``files``); ``wrap(fused)``
    builds the module to trace (``fused``: its attention as onnxruntime's GroupQueryAttention,
    asked only of families that fuse); ``example`` the inputs it is traced at; ``axes`` names the
    dynamic axes of inputs and outputs (axes sharing a name share a size); ``note`` what the
    progress line adds ("with its KV cache (8 layers)")."""

    role: str
    wrap: Callable[[bool], object]
    example: tuple
    inputs: list[str]
    outputs: list[str]
    axes: dict
    note: str = ""


@dataclass(frozen=True)
class Written:
    """What the shared export made, for the family's result: the files under their final names
    (or the parity-failed ones), how each graph was made, the parity, the seconds taken."""

    files: dict[str, Path]
    graphs: dict[str, tuple[Graph, DecoderGraph]]
    parity: GenerationParity
    seconds: float


def stem(output: str | Path) -> str:
    """The name a family's files are written under: ``output``'s, less its ``.onnx``."""
    name = Path(output).name
    return name[: -len(".onnx")] if name.endswith(".onnx") else name


def failed_name(output: str | Path) -> Path:
    """Where an export that fails its parity keeps its graph: ``output``'s name less its suffix,
    then ``.parity-failed.onnx`` (``m.onnx`` -> ``m.parity-failed.onnx``); the one rule of the
    plain export and the decoder's."""
    output = Path(output)
    return output.with_name(output.stem + ".parity-failed.onnx")


def past_example(batch: int, heads: int, length: int, head_dim: int, count: int) -> list:
    """``count`` random cache tensors [batch, heads, length, head_dim], a past of ``length``."""
    import torch

    return [torch.randn(batch, heads, length, head_dim) for _ in range(count)]


class GenerativeTask:
    """A generative export's family. A subclass sets ``name`` (the ``--task``), ``needs`` (which
    modules fit, in words), ``opset``, ``fuses`` (whether onnxruntime's fused ops are asked for),
    ``external`` (weights in external data) and supplies ``fits``, ``files``, ``graphs``,
    ``parity`` and ``result``; ``metadata``, ``manifest`` and ``finish`` when it has them. What
    it writes opens with ``generate.open_generator``."""

    name: str
    needs: str
    opset: int = 17
    fuses: bool = False
    external: bool = False

    def fits(self, module) -> bool:
        raise NotImplementedError

    def files(self, output: Path) -> dict[str, Path]:
        """role -> the path written for ``output`` (each graph's, the manifest's)."""
        raise NotImplementedError

    def graphs(self, module) -> Iterator[Graph]:
        """The graphs, in the order they are exported (a later one's example may come from an
        earlier one's module)."""
        raise NotImplementedError

    def parity(self, module, staged: dict[str, Path]) -> GenerationParity:
        raise NotImplementedError

    def result(self, module, reference: str, written: Written):
        """The family's result; its ``str``'s second line says the parity."""
        raise NotImplementedError

    def metadata(self, module, reference: str) -> dict[str, str]:
        """Metadata the family adds to every graph (``provenance.stamp`` adds where it came
        from)."""
        return {}

    def manifest(self, module) -> dict | None:
        """The JSON written beside the graphs (the ``manifest`` role), graph names filled in."""
        return None

    def finish(self, model) -> None:
        """A last change to each traced graph, in place."""

    def failed(self, output: Path) -> Path:
        """What the parity-failed copies are named for (``files`` of it): ``failed_name``."""
        return failed_name(output)

    def writes(self, output: str | Path) -> list[Path]:
        """Every file ``export`` may write for ``output``: its files, their parity-failed copies,
        the graphs' external data."""
        output = Path(output)
        written = [*self.files(output).values(), *self.files(self.failed(output)).values()]
        return [*written, *data_files(*(p for p in written if p.suffix == ".onnx"))]

    def export(
        self,
        module,
        reference: str,
        output: str | Path,
        *,
        opset: int | None = None,
        fuse: bool = True,
        progress: Callable[[str], None] = silent,
    ):
        """Export ``module`` as this family's graphs for ``output`` and verify them by generating;
        the family's result, or CheckFailed (the files kept as parity-failed copies)."""
        output = Path(output)
        refuse_overwrite(self.writes(output), [])
        started = time.perf_counter()
        module = module.eval()
        with staging_dir(output) as stage:  # beside the output; removed whatever happens
            staged = self.files(stage / output.name)
            graphs = self._write(module, reference, staged, opset, fuse, progress)
            manifest = self.manifest(module)
            if manifest is not None:
                write_json(staged[MANIFEST], self._named(manifest, staged))
            progress(f"generation parity: {PARITY_STEPS} greedy steps vs transformers generate")
            parity = self.parity(module, staged)
            target = self.files(output if parity.tokens_equal else self.failed(output))
            self._publish(staged, target, manifest)
        written = Written(target, graphs, parity, time.perf_counter() - started)
        result = self.result(module, reference, written)
        if not parity.tokens_equal:
            where = target.get(MANIFEST) or next(iter(target.values()))
            raise CheckFailed(
                f"{output}: {str(result).splitlines()[1]}; nothing written under its names, "
                f"kept as {where.name}"
                + (f" (+ {len(target) - 1} more)" if len(target) > 1 else ""),
                result=result,
            )
        return result

    def _write(self, module, reference, staged, opset, fuse, progress) -> dict:
        """Trace, finish, tag, save and check every graph into ``staged``'s paths."""
        graphs, source = {}, provenance(reference)  # its hash once for every graph
        with scratch_dir("onnxdeploy-export-") as scratch:
            for graph in self.graphs(module):
                progress(
                    f"exporting the {module.config.model_type} {graph.role} {graph.note}".strip()
                )
                try:
                    model, made = export_graph(
                        graph.wrap,
                        graph.example,
                        (graph.inputs, graph.outputs, graph.axes),
                        opset=opset or self.opset,
                        fuse=fuse and self.fuses,
                        scratch=scratch,
                        progress=progress,
                    )
                except Exception as exc:  # noqa: BLE001 - the exporter's own failure, named
                    first = str(exc).splitlines()[0][:200] if str(exc) else ""
                    raise UserError(
                        f"{reference}: the {graph.role} could not be exported "
                        f"({type(exc).__name__}: {first})"
                    ) from exc
                self.finish(model)
                stamp(model, source | route(made.route) | self.metadata(module, reference))
                write_model(model, staged[graph.role], external=self.external)
                del model
                check_model_file(staged[graph.role], staged[graph.role].name, full_check=False)
                graphs[graph.role] = (graph, made)
        return graphs

    @staticmethod
    def _named(manifest: dict, files: dict[str, Path]) -> dict:
        """``manifest`` naming the graphs it sits beside (by role, file name only)."""
        return {**manifest, **{role: p.name for role, p in files.items() if role != MANIFEST}}

    def _publish(self, staged: dict, target: dict, manifest: dict | None) -> None:
        """The staged graphs moved to ``target``'s names (same filesystem: atomic each, external
        data first), then the manifest naming them, so a manifest never names a graph that is not
        there yet."""
        for role, path in staged.items():
            if role != MANIFEST:
                move_model(path, target[role])
        if manifest is not None:
            write_json(target[MANIFEST], self._named(manifest, target))
