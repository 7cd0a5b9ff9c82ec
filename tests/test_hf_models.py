"""Hugging Face models (tiny random-init configs saved with save_pretrained: nothing is downloaded)
through export: raw ModelOutputs, hf: references, derived typed inputs, dynamic batch and sequence.
"""

import json

import numpy as np
import onnx
import pytest

transformers = pytest.importorskip("transformers")  # the optional [hf] extra

pytestmark = pytest.mark.extra


def test_hf_text_model_exports_with_dynamic_batch_and_sequence(cli, tiny_bert, tmp_path):
    import onnxruntime as ort

    code, out, err = cli("export", f"hf:{tiny_bert}", "-o", "bert.onnx", "--json")
    assert code == 0, err
    report = json.loads(out)
    names = [i["name"] for i in report["inputs"]]
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    assert report["task"] == "encoder"
    assert report["parity"]["passed"] and [o["name"] for o in report["parity"]["outputs"]] == [
        "logits"
    ]
    session = ort.InferenceSession(str(tmp_path / "bert.onnx"))
    assert [i.type for i in session.get_inputs()] == ["tensor(int64)"] * 3
    for batch, length in ((1, 7), (4, 23)):  # two batches, two lengths
        ids = np.ones((batch, length), np.int64)
        (logits,) = session.run(
            None, {"input_ids": ids, "attention_mask": ids, "token_type_ids": 0 * ids}
        )
        assert logits.shape == (batch, 3)


def test_raw_model_output_of_an_image_model(tiny_vit, tmp_path):
    from onnxdeploy.exporter import export

    model = transformers.ViTModel.from_pretrained(
        tiny_vit
    ).eval()  # returns a ModelOutput, no .logits
    result = export("vit", tmp_path / "vit.onnx", module=model, input_shapes=[(1, 3, 32, 32)])
    outputs = [o.name for o in onnx.load(str(tmp_path / "vit.onnx")).graph.output]
    assert outputs == ["last_hidden_state", "pooler_output"] and result.parity


def test_hf_image_reference_derives_pixel_values(cli, tiny_vit):
    code, out, err = cli("export", f"hf:{tiny_vit}", "-o", "vit.onnx", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["inputs"] == [
        {"name": "pixel_values", "dtype": "float32", "shape": [1, 3, 32, 32], "dynamic_axes": []}
    ]
    assert report["task"] == "vision"


def test_hf_reference_errors_are_exit_2(cli, tmp_path):
    code, _, err = cli("export", f"hf:{tmp_path / 'nothing-here'}", "-o", "x.onnx")
    assert (
        code == 2 and "no Hugging Face config there" in err and len(err.strip().splitlines()) == 1
    ), err


def test_an_architecture_transformers_lacks_is_exit_2_naming_it(cli, tiny_bert, tmp_path):
    """It exported the base model, its output named 'logits', with exit 0 (issue 31)."""
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertForSomethingNew"]
    (folder / "config.json").write_text(json.dumps(config))
    code, _, err = cli("export", f"hf:{folder}", "-o", "x.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "'BertForSomethingNew'" in err and "transformers" in err
    assert not (tmp_path / "x.onnx").exists()


def test_compress_a_model_torch_fx_cannot_trace_zeroes_exactly_what_prune_channels_removes(
    cli, tmp_path
):
    """A Hugging Face ResNet (torch.fx cannot trace it): groups from Torch-Pruning's dependency graph,
    and every channel compress zeroes is removed from the export, exactly."""
    import torch

    from onnxdeploy.compress import find_groups

    config = transformers.ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        layer_type="basic",
        num_labels=3,
        num_channels=3,
    )
    transformers.set_seed(0)
    model = transformers.ResNetForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "resnet")
    with pytest.raises(Exception):
        torch.fx.symbolic_trace(model)
    groups = find_groups(model, torch.zeros(1, 3, 32, 32))
    assert groups and all(g.producers and g.consumers for g in groups)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    np.savez(tmp_path / "d.npz", x_train=x[:32], y_train=y[:32], x_val=x[32:], y_val=y[32:])
    torch.save(model.state_dict(), tmp_path / "dense.pt")
    code, out, err = cli(
        "compress",
        f"hf:{tmp_path / 'resnet'}",
        "--checkpoint",
        "dense.pt",
        "--data",
        "d.npz",
        "--prune-channels",
        "0.5",
        "--uniform",
        "--epochs",
        "0",
        "-o",
        "small.pt",
        "--json",
    )
    assert code == 0, err
    zeroed = json.loads(out)["steps"][-1]["channels_zeroed"]
    code, _, err = cli(
        "export", f"hf:{tmp_path / 'resnet'}", "--checkpoint", "small.pt", "-o", "small.onnx"
    )
    assert code == 0, err
    code, out, err = cli("prune-channels", "small.onnx", "-o", "pruned.onnx", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert zeroed > 0 and report["passes"]["prune-channels"]["channels_removed"] == zeroed
    assert report["comparison"]["passed"]


def test_a_hugging_face_model_through_run_with_a_recipe(cli, tiny_vit, tmp_path):
    """The README's worked example: a save_pretrained folder through train, export, quantize, evaluate, bench."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 3, 32, 32)).astype(np.float32)
    y = (x[:, 0].mean(axis=(1, 2)) > 0).astype(np.int64) * 2  # classes 0 and 2 of 5
    np.savez(tmp_path / "images.npz", x_train=x[:64], y_train=y[:64], x_val=x[64:], y_val=y[64:])
    (tmp_path / "vit.toml").write_text(
        f'model = "hf:{tiny_vit}"\ndata = "images.npz"\n'
        '[[stage]]\nname = "train"\nepochs = 2\n[[stage]]\nname = "export"\n'
        '[[stage]]\nname = "evaluate"\n'
        '[[stage]]\nname = "bench"\nbatch = [1, 4]\niterations = 5\nplot = false\n'
    )
    code, out, err = cli("run", "vit.toml", "--runs-dir", "runs")
    assert code == 0, err
    (run,) = list((tmp_path / "runs").iterdir())
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "passed"
    assert (
        abs(
            report["stages"]["evaluate"]["accuracy"]["fp32"]
            - report["stages"]["train"]["torch_accuracy"]
        )
        < 0.5
    )
    assert {r["batch"] for r in report["stages"]["bench"]["results"]} == {1, 4}


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_dependency_groups_are_removed_exactly_on_transformer_mlps(tmp_path, kind):
    """ViT and ConvNeXt MLP hidden units (Linear on [B, S, C], GELU, Linear): zeroed by groups from the
    dependency graph, then removed by prune-channels, counts equal and outputs unchanged."""
    import torch

    from onnxdeploy.compress import prune_uniform
    from onnxdeploy.exporter import export
    from onnxdeploy.passes import prune_channels

    transformers.set_seed(0)
    model = {
        "vit": lambda: transformers.ViTForImageClassification(
            transformers.ViTConfig(
                image_size=32,
                patch_size=8,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=40,
            )
        ),
        "convnext": lambda: transformers.ConvNextForImageClassification(
            transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
        ),
    }[kind]().eval()
    example = torch.randn(1, 3, 32, 32)
    done = prune_uniform(model, 0.5, example_inputs=example)
    zeroed = sum(len(g.zeroed) for g in done)
    export(
        kind, tmp_path / "z.onnx", module=model, input_shapes=[(1, 3, 32, 32)], atol=1e-3, rtol=1e-3
    )
    result = prune_channels(tmp_path / "z.onnx", tmp_path / "p.onnx", rtol=1e-4)
    assert (
        zeroed > 0
        and result.passes["prune-channels"]["channels_removed"] == zeroed
        and result.comparison
    )


def test_transformer_fusion_reports_counts_keeps_outputs_and_marks_contrib_ops(
    cli, tiny_bert, tmp_path
):
    code, _, err = cli("export", f"hf:{tiny_bert}", "-o", "bert.onnx")
    assert code == 0, err
    code, out, err = cli(
        "optimize", "bert.onnx", "-o", "fused.onnx", "--passes", "transformer-fusion", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    fused = report["passes"]["transformer-fusion"]
    assert fused and all(n > 0 for n in fused.values()) and report["comparison"]["passed"]
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "fused.onnx")).metadata_props}
    assert meta["onnxdeploy.runtime"].startswith("onnxruntime only")


def test_transformer_fusion_says_when_nothing_fused(cli, tmp_path):
    from tests.onnx_graphs import GraphBuilder

    g = GraphBuilder(shape=(1, 3, 8, 8))
    onnx.save(g.model(g.conv("x", 3, 2)), str(tmp_path / "m.onnx"))
    code, out, err = cli("optimize", "m.onnx", "-o", "f.onnx", "--passes", "transformer-fusion")
    assert code == 0, err
    assert "nothing fused" in out and "transformer-fusion: no change" in out
