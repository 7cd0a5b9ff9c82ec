"""Unit tests (no torch) of the export every generative family shares
(``exporter.generative_task.GenerativeTask.export``), on a made-up family of two graphs and a
manifest whose tracing is replaced by hand-made graphs: files staged beside the output and moved
to their names only when the parity holds, the manifest written last naming its graphs, the
parity-failed copies (external data renamed with them), the metadata every graph gets, an
exporter failure named by graph, an interrupt, and the refusal to overwrite an input."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxdeploy
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.exporter import generative_task
from onnxdeploy.exporter.decoder_graph import TORCHSCRIPT, DecoderGraph
from onnxdeploy.exporter.generation_parity import GenerationParity
from onnxdeploy.exporter.generative_task import (
    MANIFEST,
    GenerativeTask,
    Graph,
    failed_name,
    stem,
)
from onnxdeploy.onnx_io import external_files, metadata


def _scaled(scale: float) -> onnx.ModelProto:
    """y = x @ (scale * I[64]): one weight past the external-data threshold."""
    weight = numpy_helper.from_array(scale * np.eye(64, dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@dataclass
class _Config:
    model_type: str = "toy"


class _Module:
    config = _Config()

    def eval(self):
        return self


class _Family(GenerativeTask):
    """Two graphs (``first`` scales by 2, ``second`` by 3) and a manifest; its parity reads the
    staged files as a real family's does, and says ``equal`` unless told otherwise."""

    name = "toy-generation"
    needs = "a toy"
    external = True

    def __init__(self, equal: bool = True, interrupt: bool = False):
        self.equal, self.interrupt, self.seen = equal, interrupt, {}

    def files(self, output: Path) -> dict[str, Path]:
        output = Path(output)
        return {
            "first": output.with_name(f"{stem(output)}.first.onnx"),
            "second": output.with_name(f"{stem(output)}.second.onnx"),
            MANIFEST: output.with_name(f"{stem(output)}.json"),
        }

    def graphs(self, module):
        for role in ("first", "second"):
            yield Graph(role, lambda fused: None, (), ["x"], ["y"], {})

    def manifest(self, module) -> dict:
        return {"schema": "toy/1", "family": module.config.model_type}

    def metadata(self, module, reference: str) -> dict[str, str]:
        return {"toy.reference": reference}

    def finish(self, model) -> None:
        model.doc_string = "finished"

    def parity(self, module, staged: dict[str, Path]) -> GenerationParity:
        if self.interrupt:
            raise KeyboardInterrupt
        self.seen = {role: p for role, p in staged.items()}
        manifest = json.loads(staged[MANIFEST].read_text())
        for role in ("first", "second"):  # the staged manifest names its staged graphs
            assert (staged[MANIFEST].parent / manifest[role]).is_file()
        return GenerationParity(16, 2, self.equal, None if self.equal else (1, 5))

    def result(self, module, reference, written):
        return _Result(written)


@dataclass
class _Result:
    written: object

    def __str__(self) -> str:
        return f"toy -> {self.written.files[MANIFEST]}\nparity: {self.written.parity.verdict()}"


@pytest.fixture
def traced(monkeypatch):
    """The tracing replaced: each graph in turn is a scaled identity (2, then 3)."""
    asked = []

    def export_graph(wrap, example, names, *, opset, fuse, scratch, progress):
        asked.append((names, opset, fuse))
        return _scaled(2.0 + len(asked) - 1), DecoderGraph(TORCHSCRIPT)

    monkeypatch.setattr(generative_task, "export_graph", export_graph)
    return asked


def _run(path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.ones((1, 64), np.float32)})[0]


def test_the_graphs_move_to_their_names_with_the_manifest_naming_them(tmp_path, traced):
    family = _Family()
    result = family.export(_Module(), "toy:ref", tmp_path / "out.onnx", fuse=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.first.onnx",
        "out.first.onnx.data",
        "out.json",
        "out.second.onnx",
        "out.second.onnx.data",
    ]  # the staging folder gone, external data named for each graph
    manifest = json.loads((tmp_path / "out.json").read_text())
    assert manifest == {
        "schema": "toy/1",
        "family": "toy",
        "first": "out.first.onnx",
        "second": "out.second.onnx",
    }
    assert _run(tmp_path / "out.first.onnx")[0, 0] == 2.0
    assert _run(tmp_path / "out.second.onnx")[0, 0] == 3.0
    assert external_files(tmp_path / "out.second.onnx") == ["out.second.onnx.data"]
    model = onnx.load(str(tmp_path / "out.first.onnx"), load_external_data=False)
    assert model.doc_string == "finished" and model.producer_name == "onnxdeploy"
    assert metadata(model) == {
        "onnxdeploy.version": onnxdeploy.__version__,
        "onnxdeploy.source": "toy:ref",
        "onnxdeploy.exporter": TORCHSCRIPT,
        "toy.reference": "toy:ref",
    }
    assert result.written.files[MANIFEST] == tmp_path / "out.json"
    assert set(result.written.graphs) == {"first", "second"}
    # parity ran on the staged files, in a folder beside the output, under the final names
    assert {p.parent.parent for p in family.seen.values()} == {tmp_path}
    assert family.seen["first"].name == "out.first.onnx"
    # a family that does not fuse is never asked to; the default opset is the family's
    assert [(opset, fuse) for _, opset, fuse in traced] == [(17, False), (17, False)]


def test_tokens_that_differ_leave_parity_failed_copies_and_nothing_under_the_names(
    tmp_path, traced
):
    with pytest.raises(CheckFailed) as caught:
        _Family(equal=False).export(_Module(), "toy", tmp_path / "out.onnx", opset=18)
    message = str(caught.value)
    assert "DIFFER at prompt 1, step 5; nothing written under its names" in message
    assert "kept as out.parity-failed.json (+ 2 more)" in message
    assert caught.value.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.parity-failed.first.onnx",
        "out.parity-failed.first.onnx.data",
        "out.parity-failed.json",
        "out.parity-failed.second.onnx",
        "out.parity-failed.second.onnx.data",
    ]
    manifest = json.loads((tmp_path / "out.parity-failed.json").read_text())
    assert manifest["first"] == "out.parity-failed.first.onnx"
    failed = tmp_path / "out.parity-failed.second.onnx"
    assert external_files(failed) == ["out.parity-failed.second.onnx.data"]
    assert _run(failed)[0, 0] == 3.0  # reads its renamed data
    assert caught.value.result.written.files["second"] == failed
    assert [opset for _, opset, _ in traced] == [18, 18]


def test_a_graph_that_cannot_be_traced_is_named_and_nothing_is_left(tmp_path, monkeypatch):
    calls = []

    def export_graph(wrap, example, names, **options):
        calls.append(names)
        if len(calls) == 2:
            raise RuntimeError("unsupported op aten::frobnicate\nmore detail")
        return _scaled(2.0), DecoderGraph(TORCHSCRIPT)

    monkeypatch.setattr(generative_task, "export_graph", export_graph)
    with pytest.raises(UserError) as caught:
        _Family().export(_Module(), "toy", tmp_path / "out.onnx")
    assert str(caught.value) == (
        "toy: the second could not be exported (RuntimeError: unsupported op aten::frobnicate)"
    )
    assert os.listdir(tmp_path) == []


def test_an_interrupt_during_the_parity_leaves_nothing(tmp_path, traced):
    with pytest.raises(KeyboardInterrupt):
        _Family(interrupt=True).export(_Module(), "toy", tmp_path / "out.onnx")
    assert os.listdir(tmp_path) == []


def test_what_it_may_write_is_every_file_and_its_parity_failed_copy_and_data(tmp_path):
    family = _Family()
    writes = family.writes(tmp_path / "out.onnx")
    assert {p.name for p in writes} == {
        "out.first.onnx",
        "out.second.onnx",
        "out.json",
        "out.parity-failed.first.onnx",
        "out.parity-failed.second.onnx",
        "out.parity-failed.json",
        *(f"out.{s}.onnx.data" for s in ("first", "second")),
        *(f"out.parity-failed.{s}.onnx.data" for s in ("first", "second")),
    }
    assert failed_name(tmp_path / "out.onnx") == tmp_path / "out.parity-failed.onnx"
    assert stem("a/b.model") == "b.model" and stem("a/b.onnx") == "b"


def test_a_reference_that_is_a_folder_is_hashed_into_every_graph(tmp_path, traced):
    """The provenance every export writes (``exporter.provenance``): an ``hf:DIR`` source's
    sha256, as the plain graph's metadata has it."""
    from onnxdeploy.hashing import sha256_path

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    _Family().export(_Module(), f"hf:{tmp_path / 'model'}", out / "m.onnx")
    for role in ("first", "second"):
        model = onnx.load(str(out / f"m.{role}.onnx"), load_external_data=False)
        meta = metadata(model)
        assert meta["onnxdeploy.source_sha256"] == sha256_path(tmp_path / "model")
        assert model.producer_version == onnxdeploy.__version__


def test_a_decoder_and_an_encoder_decoder_name_their_failed_copies_as_they_always_did(tmp_path):
    """The plain export's rule for the decoder (the name less its suffix), the encoder-decoder's
    stem for its files and their copies alike: the same for ``.onnx`` outputs, apart otherwise."""
    from onnxdeploy.exporter.decoder import DECODER
    from onnxdeploy.exporter.seq2seq import SEQ2SEQ

    assert failed_name(tmp_path / "m.model") == tmp_path / "m.parity-failed.onnx"
    assert tmp_path / "m.parity-failed.onnx" in DECODER.writes(tmp_path / "m.model")
    assert tmp_path / "m.parity-failed.onnx.data" in DECODER.writes(tmp_path / "m.model")
    written = {p.name for p in SEQ2SEQ.writes(tmp_path / "t5.model")}
    assert {"t5.model.encoder.onnx", "t5.model.parity-failed.encoder.onnx"} <= written
    assert {p.name for p in SEQ2SEQ.writes(tmp_path / "t5.onnx")} >= {
        "t5.parity-failed.json",
        "t5.parity-failed.decoder.onnx.data",
    }
