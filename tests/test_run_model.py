"""``onnxdeploy run MODEL``: the model's own recipe, its variants judged, the fastest kept and
packaged, the recipe written beside (issue 28, item 5)."""

import json
from dataclasses import replace

import onnx
import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.pipeline import RunRequest, load_recipe, plan, run
from onnxdeploy.pipeline.recipe import to_toml
from tests.onnx_graphs import GraphBuilder


def _conv_classifier(path, zero=(1, 4)):
    """A small conv net on 1x16x16 digits-sized inputs whose first conv has exactly-zero filters
    (as a model channel-pruned elsewhere arrives), ending in 10 class logits."""
    g = GraphBuilder(shape=(1, 1, 16, 16), seed=3)
    x = g.op("Relu", g.conv("x", 1, 16, zero=zero))
    x = g.op("Relu", g.conv(x, 16, 16))
    x = g.op("Flatten", g.op("GlobalAveragePool", x))
    w, b = g.gemm_weight(16, 10)
    logits = g.op("Gemm", x, w, b, transB=1)
    onnx.save(g.model(logits), path)
    return path


def _forced(recipe):
    """The same recipe with int8 kept even where it is not faster: what the variants are is then
    independent of this machine's timing noise (the choice between them still is timed)."""
    stages = tuple(
        (name, {**options, "force_int8": True} if name == "quantize" else options)
        for name, options in recipe.stages
    )
    return replace(recipe, stages=stages)


def _variants(report):
    return {v["model"]: v for v in report["stages"]["select"]["variants"]}


def _check_choice(variants, reference):
    """The kept model is the fastest of those that hold quality and are measurably faster than the
    reference, or the reference when none is."""
    eligible = [
        v
        for name, v in variants.items()
        if name != reference and v["rejected"] is None and v["ci95"][0] > 1.0
    ]
    chosen = [name for name, v in variants.items() if v["chosen"]]
    expected = min(eligible, key=lambda v: v["p50_ms"])["model"] if eligible else reference
    assert chosen == [expected]
    return expected


def test_run_a_tiny_conv_net_ends_in_a_package_and_a_report_with_pruned_int8(tmp_path):
    built = plan(RunRequest("digits_cnn", runs_dir=str(tmp_path / "runs"), target_batch=8))
    assert [name for name, _ in built.recipe.stages] == [
        "train",
        "compress",
        "export",
        "prune-channels",
        "quantize",
        "evaluate",
        "bench",
        "select",
        "package",
    ]
    result = run(_forced(built.recipe), progress=lambda m: None, announce=lambda m: None)
    report = result.report
    variants = _variants(report)
    assert {"dense", "pruned", "int8", "pruned+int8"} <= set(variants)
    assert report["stages"]["prune-channels"]["channels_removed"] > 0
    chosen = _check_choice(variants, "dense")
    for name, v in variants.items():  # every variant verified: accuracy on labelled digits
        assert v["metric"] == "accuracy" and 0 <= v["quality"] <= 100
        assert v["drop"] == pytest.approx(variants["dense"]["quality"] - v["quality"], abs=1e-2)
        assert report["stages"]["evaluate"]["accuracy"][name] == pytest.approx(v["quality"], abs=0.01)
    package = result.run_dir / "package"
    manifest = json.loads((package / "manifest.json").read_text())
    assert (package / "model.ort").is_file() and manifest["round_trip"]["passed"]
    assert report["stages"]["package"]["model"] == chosen
    html = (result.run_dir / "report.html").read_text()
    section = html[html.index('<section id="variants">') : html.index('<section id="latency">')]
    assert "<svg" in section and f"Kept: <strong>{chosen}</strong>" in section
    assert all(f"<td>{name}</td>" in section for name in variants)
    # the recipe written beside reproduces the run's recipe exactly
    written = load_recipe(result.run_dir / "recipe.toml")
    assert written.stages == _forced(built.recipe).stages
    assert (written.model, written.data, written.seed) == ("digits_cnn", "digits", 0)


def test_run_an_onnx_file_skips_the_pytorch_stages(cli, tmp_path):
    model = _conv_classifier(tmp_path / "given.onnx")
    before = model.read_bytes()
    code, out, err = cli("run", model, "--runs-dir", "runs", "--target-batch", "4")
    assert code == 0, err
    assert "accuracy on real inputs is unknown" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text())
    stages = list(report["stages"])
    assert stages[:2] == ["export", "prune-channels"] and stages[-3:] == ["bench", "select", "package"]
    assert "train" not in stages and "compress" not in stages
    assert report["stages"]["export"]["exporter"] == "none (ONNX input)"
    assert report["stages"]["prune-channels"]["channels_removed"] == 2  # the two zero filters
    variants = _variants(report)
    assert {"fp32", "pruned"} <= set(variants)
    assert variants["pruned"]["snr_db"] is None or variants["pruned"]["snr_db"] > 100  # exact
    assert variants["fp32"]["metric"] == "agreement"  # no labels: judged on outputs
    _check_choice(variants, "fp32")
    assert (run_dir / "package" / "model.ort").is_file()
    assert model.read_bytes() == before  # the input is only read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["given.onnx", "runs"]
    recipe = load_recipe(run_dir / "recipe.toml")
    assert recipe.model == str(model.resolve()) and recipe.data == "random"
    assert "kept" in out and "select:" in out


def test_recipe_round_trips_through_toml(tmp_path):
    model = _conv_classifier(tmp_path / "m.onnx")
    built = plan(RunRequest(str(model), target_latency=0.5, max_drop=0.5, target_batch=2))
    path = tmp_path / "r.toml"
    path.write_text(to_toml(built.recipe))
    again = load_recipe(path)
    assert again.stages == built.recipe.stages
    assert dict(again.stages)["select"]["target_latency"] == 0.5


@pytest.mark.parametrize(
    "request_kwargs, fragment",
    [
        ({"model": "no_such_model"}, "no_such_model"),
        ({"model": "missing.onnx"}, "missing.onnx: no such file"),
        ({"model": "net.py:build"}, "--input-shape"),
        ({"model": "digits_cnn", "data": "random"}, "zoo model is built untrained"),
        ({"model": "digits_cnn", "target_latency": 1.5}, "target_latency 1.5"),
        ({"model": "digits_cnn", "max_drop": -1}, "max_drop -1"),
        ({"model": "digits_cnn", "target_threads": 100000}, "100000"),
    ],
)
def test_run_model_mistakes_are_user_errors_before_work(tmp_path, monkeypatch, request_kwargs, fragment):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=fragment.replace("-", r"\-").replace(".", r"\.")):
        plan(RunRequest(**request_kwargs))
    assert list(tmp_path.iterdir()) == []


def test_model_options_with_a_recipe_are_refused(cli, tmp_path):
    (tmp_path / "r.toml").write_text('model = "digits_cnn"\n[[stage]]\nname = "train"\n')
    code, _, err = cli("run", "r.toml", "--data", "digits")
    assert code == 2 and "--data: applies to 'run MODEL'" in err


def test_an_onnx_recipe_refuses_pytorch_stages(tmp_path):
    model = _conv_classifier(tmp_path / "m.onnx")
    (tmp_path / "r.toml").write_text(f'model = "{model}"\n[[stage]]\nname = "train"\n')
    with pytest.raises(UserError, match="works on a PyTorch model"):
        load_recipe(tmp_path / "r.toml")


def _tiny_llama(folder):
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        eos_token_id=63, bos_token_id=62, pad_token_id=0,
    )
    transformers.LlamaForCausalLM(config).eval().save_pretrained(folder)
    return folder


def _quantized_decodes_faster(monkeypatch):
    """Generation timing where every quantized model decodes at twice fp32's speed (the run's
    fp32 model is its model.onnx): which variants exist and which is kept then does not rest on
    this machine's timing of a tiny model."""
    import numpy as np

    from onnxdeploy.generate import bench as generation

    def rounds(prompts, *, new_tokens, threads, rounds, progress=None):
        rng = np.random.default_rng(0)
        found = generation.GenerationRounds()
        for path in prompts:
            fast = not str(path).endswith("model.onnx")
            found.steps[path] = list((0.5 if fast else 1.0) + rng.random(rounds * new_tokens) / 50)
            found.firsts[path] = [5.0] * rounds
            found.created[path], found.peaks[path] = 1.0, 100.0
        return found

    monkeypatch.setattr(generation, "generation_rounds", rounds)


def test_run_a_causal_lm_exports_quantizes_times_decoding_and_packages(tmp_path, monkeypatch):
    """issue 28, item 5: a decoder gets its own recipe: exported with its KV cache, quantized as a
    language model (agreement and KL against fp32), timed decoding, the fastest measurably faster
    model that holds the floor kept and packaged for onnxruntime-genai."""
    folder = _tiny_llama(tmp_path / "llama")
    _quantized_decodes_faster(monkeypatch)
    monkeypatch.chdir(tmp_path)
    built = plan(RunRequest(f"hf:{folder}"))
    assert [name for name, _ in built.recipe.stages] == [
        "export", "quantize", "bench", "select", "package"
    ]
    assert any("agreement and KL" in n for n in built.notes)
    result = run(built.recipe, runs_dir=tmp_path / "runs")
    stages = result.report["stages"]
    assert stages["export"]["exporter"] == "decoder with KV cache"
    kept = stages["quantize"]["chosen"]
    assert kept != "fp32" and any(a["agreement"] for a in stages["quantize"]["attempts"])
    variants = _variants(result.report)
    assert set(variants) == {"fp32", kept} and variants[kept]["chosen"]
    assert variants[kept]["metric"] == "agreement" and variants[kept]["speedup"] > 1.5
    package = result.run_dir / "package"
    assert (package / "genai_config.json").is_file()
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["round_trip"]["passed"]
    ops = (package / "required_operators.config").read_text()
    assert "MatMulNBits" in ops or "MatMulInteger" in ops
    again = load_recipe(result.run_dir / "recipe.toml")
    assert again.stages == built.recipe.stages


def test_a_decoder_run_refuses_what_does_not_apply(tmp_path):
    folder = _tiny_llama(tmp_path / "llama")
    with pytest.raises(UserError, match="^input_shape: does not apply .* a decoder"):
        plan(RunRequest(f"hf:{folder}", input_shape="1x8"))
