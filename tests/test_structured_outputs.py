"""Models whose forward returns a dict, a namedtuple or nested containers export with named outputs,
per-output parity, and train/evaluate on their scores ("logits", else the first tensor)."""

from collections import namedtuple

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from onnxdeploy.exporter import export
from onnxdeploy.models.outputs import classifier_scores, flatten_outputs

Pair = namedtuple("Pair", ["scores", "features"])


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return {"logits": self.head(h), "hidden": h, "aux": None}


class NamedOut(DictOut):
    def forward(self, x):
        h = torch.relu(self.body(x))
        return Pair(self.head(h), h)


class NestedOut(DictOut):
    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.head(h), {"hidden": h, "both": (h, h * 2)}


def test_flattening_rule():
    t = torch.zeros(1)
    assert [n for n, _ in flatten_outputs(t)] == ["logits"]
    assert [n for n, _ in flatten_outputs({"a": t, "b": None, "c": (t, t)})] == [
        "a",
        "c.output_0",
        "c.output_1",
    ]
    assert [n for n, _ in flatten_outputs(Pair(t, t))] == ["scores", "features"]
    assert classifier_scores({"hidden": t + 1, "logits": t}) is not None
    assert float(classifier_scores({"hidden": t + 1, "logits": t})[0]) == 0.0
    assert float(classifier_scores(Pair(t + 2, t))[0]) == 2.0


@pytest.mark.parametrize(
    "cls, names",
    [
        (DictOut, ["logits", "hidden"]),
        (NamedOut, ["scores", "features"]),
        (
            NestedOut,
            ["output_0", "output_1.hidden", "output_1.both.output_0", "output_1.both.output_1"],
        ),
    ],
)
def test_structured_outputs_export_with_named_outputs_and_parity(tmp_path, cls, names):
    torch.manual_seed(0)
    result = export("structured", tmp_path / "m.onnx", module=cls(), input_shapes=[(1, 6)])
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [o.name for o in model.graph.output] == names
    assert [o.name for o in result.parity.outputs] == names and result.parity


def test_training_and_evaluation_use_the_logits(tmp_path):
    from onnxdeploy.models.train import evaluate, train
    from onnxdeploy.runtime import onnx_accuracy

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = train(DictOut(), x, y, epochs=30, lr=1e-2)
    torch_acc = evaluate(model, x, y)
    export("structured", tmp_path / "m.onnx", module=model, input_shapes=[(1, 6)])
    assert torch_acc > 80 and onnx_accuracy(tmp_path / "m.onnx", x, y) == pytest.approx(torch_acc)


def export_text_model(cli, monkeypatch, *extra):
    """`onnxdeploy export` of tiny_text_model to t.onnx: two int64 inputs with a dynamic sequence dim."""
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    code, out, err = cli(
        "export",
        "tiny_models:tiny_text_model",
        "-o",
        "t.onnx",
        "--input",
        "input_ids:int64:1x12",
        "--input",
        "attention_mask:int64:1x12",
        "--dynamic",
        "input_ids:1",
        "--dynamic",
        "attention_mask:1",
        *extra,
    )
    assert code == 0, err
    return out


def test_named_int64_inputs_with_a_dynamic_sequence(cli, tmp_path, monkeypatch):
    import json

    import onnxruntime as ort

    out = export_text_model(cli, monkeypatch, "--json")
    report = json.loads(out)
    assert [i["name"] for i in report["inputs"]] == ["input_ids", "attention_mask"]
    assert len(report["parity"]["outputs"]) == 2 and report["parity"]["passed"]
    session = ort.InferenceSession(str(tmp_path / "t.onnx"))
    assert [i.type for i in session.get_inputs()] == ["tensor(int64)", "tensor(int64)"]
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state", "logits"]
    for batch, length in ((1, 5), (3, 31)):  # batch and sequence both vary
        ids = np.ones((batch, length), np.int64)
        hidden, logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        assert hidden.shape == (batch, length, 16) and logits.shape == (batch, 3)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}
    spec = json.loads(meta["onnxdeploy.input_spec"])
    assert spec["inputs"][0] == {
        "name": "input_ids",
        "dtype": "int64",
        "shape": [1, 12],
        "dynamic_axes": [1],
    }


def test_example_inputs_npz_and_option_errors(cli, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    np.savez(
        tmp_path / "ex.npz",
        input_ids=np.arange(10, dtype=np.int64).reshape(2, 5) % 50,
        attention_mask=np.ones((2, 5), np.int64),
    )
    code, _, err = cli(
        "export",
        "tiny_models:tiny_text_model",
        "-o",
        "t.onnx",
        "--example-inputs",
        "ex.npz",
        "--dynamic",
        "input_ids:1",
        "--dynamic",
        "attention_mask:1",
    )
    assert code == 0, err
    for args, fragment in (
        (["--input", "ids:int9:1x4"], "dtype 'int9'"),
        (["--input", "ids-1x4"], "NAME:DTYPE:SHAPE"),
        (["--input", "input_ids:int64:1x4", "--dynamic", "nope:1"], "--dynamic 'nope:1'"),
        (["--input", "input_ids:int64:1x4", "--dynamic", "input_ids:2"], "between 1 and 1"),
        (["--input", "a:int64:1x4", "--input-shape", "1x4"], "give one of"),
    ):
        code, _, err = cli("export", "tiny_models:tiny_text_model", "-o", "x.onnx", *args)
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, (args, err)


def test_quantize_with_named_int64_inputs_and_a_symbolic_sequence(cli, tmp_path, monkeypatch):
    """Calibration .npz keyed by input name, int inputs passed through, timing at the data's length."""
    import json

    export_text_model(cli, monkeypatch)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (96, 12)).astype(np.int64)
    np.savez(tmp_path / "calib.npz", input_ids=ids, attention_mask=np.ones_like(ids))
    code, out, err = cli(
        "quantize",
        "t.onnx",
        "-o",
        "q.onnx",
        "--calib",
        "calib.npz",
        "--calib-size",
        "64",
        "--max-drop",
        "100",
        "--force-int8",
        "--iterations",
        "5",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] and report["calib_samples"] == 64 and report["eval_samples"] == 32
    quantized = onnx.load(str(tmp_path / "q.onnx"))
    assert [i.type.tensor_type.elem_type for i in quantized.graph.input] == [
        onnx.TensorProto.INT64
    ] * 2
    assert {n.op_type for n in quantized.graph.node} & {
        "QuantizeLinear",
        "MatMulInteger",
    }  # static or dynamic
    code, out, err = cli(
        "quantize",
        "t.onnx",
        "-o",
        "r.onnx",
        "--calib",
        "random",
        "--calib-size",
        "64",
        "--max-drop",
        "100",
        "--force-int8",
        "--iterations",
        "5",
    )
    assert code == 0, err  # random calibration draws valid ids and masks


def test_compress_and_train_a_model_with_named_int64_inputs(cli, tmp_path, monkeypatch):
    """Training, fine-tuning and distillation take several named inputs: `<input>_train` per input."""
    import json

    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (80, 12)).astype(np.int64)
    mask = np.ones_like(ids)
    y = (ids[:, 0] > 25).astype(np.int64)
    np.savez(
        tmp_path / "text.npz",
        input_ids_train=ids[:64],
        attention_mask_train=mask[:64],
        y_train=y[:64],
        input_ids_val=ids[64:],
        attention_mask_val=mask[64:],
        y_val=y[64:],
    )
    code, out, err = cli(
        "compress",
        "tiny_models:tiny_text_model",
        "--input",
        "input_ids:int64:1x12",
        "--input",
        "attention_mask:int64:1x12",
        "--data",
        "text.npz",
        "--sparsity",
        "0.5",
        "--epochs",
        "2",
        "--distill",
        "-o",
        "small.pt",
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["layer_sparsity"]["total"] == pytest.approx(0.5, abs=0.02)
    assert report["steps"][-1]["name"].endswith("distilled")


def test_dynamic_int8_on_a_transformer_shaped_graph(cli, tmp_path, monkeypatch):
    import json

    export_text_model(cli, monkeypatch)
    code, out, err = cli(
        "quantize",
        "t.onnx",
        "-o",
        "d.onnx",
        "--calib",
        "random",
        "--method",
        "dynamic",
        "--max-drop",
        "100",
        "--force-int8",
        "--iterations",
        "5",
        "--json",
    )
    assert code == 0, err
    attempts = json.loads(out)["attempts"]
    assert attempts[0]["config"]["name"] == "dynamic-int8" and attempts[0]["passed"]
    assert {a["config"]["method"] for a in attempts} == {
        "dynamic"
    }  # a full-range try too on CPUs without VNNI
    ops = {n.op_type for n in onnx.load(str(tmp_path / "d.onnx")).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
