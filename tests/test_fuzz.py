"""A table-driven fuzz of every subcommand's numbers (issue 31, item 5): each numeric option at 0,
-1, a huge value, NaN and a non-number, each path at a folder, an empty file, a text file and an
input of the same command. Whatever the value, the command ends in exit 0, 1 or 2 (never 3, never a
traceback), a refusal is one ``error:`` line, the inputs are byte-identical afterwards, and nothing
but the outputs asked for is written."""

from __future__ import annotations

import json
import os
import shutil

import click
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxdeploy.cli import main
from tests.onnx_graphs import GraphBuilder

VALUES = ("0", "-1", "1e12", "nan", "abc")
# options given as text that hold numbers (lists, percentages)
NUMERIC_TEXT = {
    "bench": ("--batch", "--threads"),
    "gate": ("--latency-threshold", "--throughput-threshold", "--size-threshold"),
}
# a huge value these take at its word and run that long: legitimate, not fuzzed
LONG_ON_PURPOSE = {("bench", "--duration", "1e12")}

# each command's cheapest real invocation, its outputs, and whether it needs torch
BASES = {
    "bench": (["bench", "m.onnx", "--iterations", "3", "--warmup", "1", "--repeat", "1"], ()),
    "compare": (["compare", "m.onnx", "same.onnx"], ()),
    "optimize": (["optimize", "m.onnx", "-o", "o.onnx"], ("o.onnx",)),
    "prune-channels": (["prune-channels", "m.onnx", "-o", "p.onnx"], ("p.onnx",)),
    "quantize": (
        [
            "quantize", "m.onnx", "-o", "q.onnx", "--calib", "random", "--calib-size", "16",
            "--iterations", "5",
        ],
        ("q.onnx", "q.int8-failed.onnx"),
    ),
    "gate": (["gate", "--baseline", "b.json", "--current", "b.json"], ()),
    "run": (["run", "m.onnx", "--runs-dir", "runs"], ("runs",)),
    "generate": (["generate", "d.onnx", "--prompt-ids", "1 2 3", "--max-new-tokens", "2"], ()),
    "export": (["export", "digits_cnn", "-o", "e.onnx"], ("e.onnx", "e.parity-failed.onnx")),
    "compress": (
        ["compress", "mlp", "--prune-channels", "0.5", "--epochs", "1", "-o", "c.pt"],
        ("c.pt",),
    ),
}
NEEDS_TORCH = {"export", "compress", "generate"}


def _numeric_options(name: str) -> list[str]:
    command = main.get_command(click.Context(main), name)
    found = [
        param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0]
        for param in command.params
        if isinstance(param, click.Option)
        and not param.is_flag
        and (
            isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType))
            or type(param.type).__name__ in ("Finite", "Positive")
        )
    ]
    return sorted({*found, *NUMERIC_TEXT.get(name, ())})


CASES = [
    pytest.param(name, option, value, marks=[pytest.mark.extra] if name in NEEDS_TORCH else [])
    for name in BASES
    for option in _numeric_options(name)
    for value in VALUES
    if (name, option, value) not in LONG_ON_PURPOSE
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    g = GraphBuilder(shape=(1, 3, 8, 8))
    model = g.model(g.conv(g.op("Relu", g.conv("x", 3, 4)), 4, 2))
    onnx.save(model, folder / "m.onnx")
    onnx.save(model, folder / "same.onnx")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(
            main, ["bench", "m.onnx", "--iterations", "3", "--warmup", "1", "--json"]
        )
        assert result.exit_code == 0, result.stderr
        (folder / "b.json").write_text(result.stdout)
    finally:
        os.chdir(cwd)
    return folder


def _decoder(workdir):
    """A two-layer Llama decoder with its KV cache, d.onnx in the fuzz folder (made once)."""
    if (workdir / "d.onnx").is_file():
        return
    transformers = pytest.importorskip("transformers")
    from onnxdeploy.exporter.decoder import export_decoder

    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
    )
    transformers.set_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    export_decoder(model, "llama", workdir / "d.onnx")


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _check(workdir, monkeypatch, args, outputs):
    monkeypatch.chdir(workdir)
    before = _tree(workdir)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    err = result.stderr
    try:
        assert result.exit_code in (0, 1, 2), (args, result.exit_code, err[-600:])
        assert "internal error" not in err and "Traceback" not in err, (args, err[-600:])
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        if result.exit_code == 2:
            assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], (args, err)
        after = _tree(workdir)
        kept = {k: v for k, v in before.items() if k.parts[0] not in outputs}
        assert {k: after[k] for k in kept} == kept, args  # inputs untouched
        new = {p.parts[0] for p in set(after) - set(before)}
        assert new <= set(outputs), (args, new)
    finally:
        for name in outputs:
            path = workdir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


@pytest.mark.parametrize("name, option, value", CASES)
def test_every_number_ends_in_an_answer_or_one_line(workdir, monkeypatch, name, option, value):
    if name in NEEDS_TORCH:
        pytest.importorskip("torch")
    if name == "generate":
        _decoder(workdir)
    args, outputs = BASES[name]
    _check(workdir, monkeypatch, [*args, option, value], outputs)


PATH_KINDS = ("folder", "empty", "text", "input")


def _path_value(workdir, kind):
    if kind == "folder":
        (workdir / "a-folder").mkdir(exist_ok=True)
        return "a-folder"
    if kind == "empty":
        (workdir / "empty.onnx").write_bytes(b"")
        return "empty.onnx"
    if kind == "text":
        (workdir / "notes.txt").write_text("not a model\n")
        return "notes.txt"
    return "m.onnx"


# each command's model-or-data paths: (base args with {} where the path goes, outputs)
PATH_CASES = {
    "bench": (["bench", "{}", "--iterations", "3"], ()),
    "compare-reference": (["compare", "{}", "m.onnx"], ()),
    "compare-candidate": (["compare", "m.onnx", "{}"], ()),
    "inspect": (["inspect", "{}"], ()),
    "optimize": (["optimize", "{}", "-o", "o.onnx"], ("o.onnx",)),
    "optimize-output": (["optimize", "m.onnx", "-o", "{}"], ("o.onnx",)),
    "quantize": (["quantize", "{}", "-o", "q.onnx", "--calib", "random"], ("q.onnx",)),
    "quantize-calib": (["quantize", "m.onnx", "-o", "q.onnx", "--calib", "{}"], ("q.onnx",)),
    "quantize-output": (["quantize", "m.onnx", "-o", "{}", "--calib", "random"], ()),
    "package": (["package", "{}", "-o", "pkg"], ("pkg",)),
    "package-input": (["package", "m.onnx", "-o", "pkg", "--input", "{}"], ("pkg",)),
    "bench-input": (["bench", "m.onnx", "--input", "{}", "--iterations", "3"], ()),
    "gate": (["gate", "--baseline", "{}", "--current", "b.json"], ()),
    "report": (["report", "{}", "-o", "r.html"], ("r.html",)),
}


@pytest.mark.parametrize("where", sorted(PATH_CASES))
@pytest.mark.parametrize("kind", PATH_KINDS)
def test_every_path_ends_in_an_answer_or_one_line(workdir, monkeypatch, where, kind):
    args, outputs = PATH_CASES[where]
    value = _path_value(workdir, kind)
    if where.endswith("-output") and kind != "input":  # -o may replace a file no input reads
        outputs = (*outputs, value)
    _check(workdir, monkeypatch, [a.replace("{}", value) for a in args], outputs)
    assert np.all([p.exists() for p in (workdir / "m.onnx", workdir / "b.json")])


_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True),
    st.text(max_size=12), st.lists(st.integers(-3, 300), max_size=3),
)
_MANIFEST = st.fixed_dictionaries(
    {"schema": st.just("onnxdeploy.seq2seq/1")},
    optional={
        key: _VALUE | st.sampled_from(["enc.onnx", "dec.onnx", "../enc.onnx", "input_ids"])
        for key in (
            "encoder", "decoder", "main_input", "layers", "heads", "head_dim", "vocab_size",
            "decoder_start_token_id", "eos_token_id", "pad_token_id", "forced_bos_token_id",
        )
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifest=_MANIFEST)
def test_fuzzed_encoder_decoder_manifests_are_read_or_refused_in_one_line(tmp_path, manifest):
    """Any hand edit of an encoder-decoder manifest is read (every field then checked) or a
    UserError naming the file; nothing else escapes."""
    from onnxdeploy.errors import UserError
    from onnxdeploy.generate.manifest import read_manifest

    for name in ("enc.onnx", "dec.onnx"):
        (tmp_path / name).write_bytes(b"")
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    try:
        info = read_manifest(path)
    except UserError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert {info["encoder"], info["decoder"]} == {"enc.onnx", "dec.onnx"}
    assert all(isinstance(info[k], int) and info[k] >= 1 for k in ("layers", "heads", "head_dim"))
    assert 0 <= info["decoder_start_token_id"] < info["vocab_size"]
