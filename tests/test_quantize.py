import json

import numpy as np
import onnx
import pytest
import torch

from onnxdeploy.errors import CheckFailed
from onnxdeploy.exporter import export
from onnxdeploy.models import ZOO
from onnxdeploy.models.train import train
from onnxdeploy.quantize import Acceptance, QuantizeConfig, TimingPlan, decide, quantize
from onnxdeploy.quantize.isa import target_flags


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each zoo model trained briefly and exported once for the whole module."""
    folder = tmp_path_factory.mktemp("zoo")
    paths = {}
    for name, epochs in (
        ("digits_cnn", 3),
        ("resnet_tiny", 3),
        ("mobilenet_tiny", 4),
        ("mlp", 8),
        ("vit_tiny", 8),
    ):
        torch.manual_seed(0)
        entry = ZOO[name]
        data = entry.digits()
        model = entry.build()
        train(model, data.x_train, data.y_train, epochs=epochs, lr=entry.lr)
        paths[name] = folder / f"{name}.onnx"
        export(name, paths[name], module=model, input_shapes=entry.input_spec())
    return paths


def qdq_ops(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node} & {
        "QuantizeLinear",
        "DequantizeLinear",
    }


def int8_ops(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node} & {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
    }


@pytest.mark.parametrize("name", sorted(ZOO))
def test_accuracy_within_bound_for_each_zoo_model(trained, tmp_path, name):
    out = tmp_path / "q.onnx"
    result = quantize(
        trained[name],
        out,
        calib="digits",
        eval_data="digits",
        config=QuantizeConfig(calib_size=256),
        acceptance=Acceptance(force_int8=True),
        timing=TimingPlan(iterations=20),
    )
    assert result.metric == "accuracy"
    chosen = next(a for a in result.attempts if a.config.name == result.chosen)
    assert chosen.drop <= 1.0 and chosen.passed
    # MatMul-dominated graphs try dynamic int8 first, CNNs static QDQ; either way the model is int8
    first = "dynamic-int8" if name in ("mlp", "vit_tiny") else "isa-default"
    assert result.attempts[0].config.name == first
    if chosen.config.method == "dynamic":
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= int8_ops(out)
    else:
        assert qdq_ops(out) == {"QuantizeLinear", "DequantizeLinear"}
    import onnxruntime as ort

    y = ort.InferenceSession(str(out)).run(
        None, {"input": np.zeros((2, *ZOO[name].input_shape), np.float32)}
    )[0]
    assert y.shape == (2, 10) and np.all(np.isfinite(y))


def test_isa_decision_is_a_pure_function_of_flags():
    avx2 = decide({"avx", "avx2", "fma"})
    vnni = decide({"avx2", "avx512f", "avx512_vnni"})
    assert avx2.reduce_range and not avx2.has_vnni
    assert not vnni.reduce_range and vnni.has_vnni
    assert decide(target_flags("avx512-vnni")) == vnni
    assert decide(target_flags("avx2")) == avx2


def test_impossible_bound_tries_fallback_then_exits_1(trained, tmp_path):
    out = tmp_path / "q.onnx"
    with pytest.raises(CheckFailed) as info:
        quantize(
            trained["mlp"],
            out,
            calib="digits",
            eval_data="digits",
            config=QuantizeConfig(calib_size=128),
            acceptance=Acceptance(min_snr_db=500.0),  # no int8 model keeps 500 dB
            timing=TimingPlan(iterations=10),
        )
    assert not out.exists()
    assert (tmp_path / "q.int8-failed.onnx").exists()
    assert "fallback-1" in str(info.value)  # nodes were excluded before giving up


def test_slower_int8_keeps_fp32_unless_forced(trained, tmp_path, monkeypatch):
    from dataclasses import replace

    from onnxdeploy import benchmarking

    real = benchmarking.benchmark

    def int8_looks_slow(request, **kw):  # every model but the input file takes 4x its real time
        run = real(request, **kw)
        slow = [
            r
            if r.model == str(trained["mlp"])
            else replace(
                r,
                stats=replace(r.stats, p50_ms=r.stats.p50_ms * 4),
                samples_ms=tuple(4 * s for s in r.samples_ms),
            )
            for r in run.results
        ]
        return replace(run, results=tuple(slow))

    monkeypatch.setattr(benchmarking, "benchmark", int8_looks_slow)
    out = tmp_path / "q.onnx"
    result = quantize(
        trained["mlp"],
        out,
        calib="digits",
        config=QuantizeConfig(calib_size=128),
        timing=TimingPlan(iterations=10),
    )
    assert result.chosen == "fp32" and "no int8 configuration is measurably faster" in result.reason
    assert not qdq_ops(out)
    forced = quantize(
        trained["mlp"],
        tmp_path / "f.onnx",
        calib="digits",
        config=QuantizeConfig(calib_size=128),
        acceptance=Acceptance(force_int8=True),
        timing=TimingPlan(iterations=10),
    )
    assert forced.chosen != "fp32" and any("SLOWER" in n for n in forced.notes)


def test_cli_json_and_explain(cli, trained):
    code, out, err = cli(
        "quantize",
        trained["mlp"],
        "-o",
        "q.onnx",
        "--calib",
        "digits",
        "--calib-size",
        "64",
        "--json",
        "--force-int8",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["attempts"] and data["bytes_after"] < data["bytes_before"]
    code, out, _ = cli(
        "quantize", trained["mlp"], "-o", "q.onnx", "--explain", "--target-cpu", "avx512-vnni"
    )
    assert code == 0 and "reduce_range: False" in out


def test_fp16_keeps_float32_io(cli, trained, tmp_path):
    code, _, err = cli("quantize", trained["digits_cnn"], "-o", "h.onnx", "--fp16")
    assert code == 0, err
    model = onnx.load(str(tmp_path / "h.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"x": np.zeros((0, 3, 8, 8), np.float32)}, "empty calibration set"),
        ({"y": np.zeros((4, 3, 8, 8), np.float32)}, "do not match the model's inputs"),
        ({"x": np.zeros((4, 3, 7, 8), np.float32)}, "has shape [4, 3, 7, 8]"),
        ({"x": np.zeros((4, 3, 8, 8), np.float64)}, "has dtype float64"),
        ({"x": np.full((4, 3, 8, 8), np.nan, np.float32)}, "contains NaN or Inf"),
    ],
)
def test_bad_calibration_data(cli, small_model, tmp_path, arrays, fragment):
    np.savez(tmp_path / "c.npz", **arrays)
    code, _, err = cli("quantize", small_model, "-o", "q.onnx", "--calib", "c.npz")
    assert code == 2, err
    assert fragment in err and "Traceback" not in err
    assert len([l for l in err.splitlines() if l.startswith("error:")]) == 1
    assert not (tmp_path / "q.onnx").exists()


def test_already_quantized_and_invalid_models(cli, trained, tmp_path):
    cli(
        "quantize",
        trained["mlp"],
        "-o",
        "q.onnx",
        "--calib",
        "digits",
        "--calib-size",
        "64",
        "--force-int8",
    )
    code, _, err = cli("quantize", "q.onnx", "-o", "qq.onnx", "--calib", "digits")
    assert code == 2 and "already quantized" in err and not (tmp_path / "qq.onnx").exists()
    bad = onnx.load(str(trained["mlp"]))
    bad.graph.node[0].input[0] = "nowhere"
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    code, _, err = cli("quantize", "bad.onnx", "-o", "qb.onnx", "--calib", "digits")
    assert code == 2 and "fails the ONNX checker" in err and not (tmp_path / "qb.onnx").exists()


def test_streaming_reader_serves_ranges_in_order_and_counts():
    from onnxdeploy.data import InputSpec, batches
    from onnxdeploy.quantize.calib_reader import StreamingReader

    specs = [InputSpec("x", (None, 2), np.dtype(np.float32))]
    data = np.arange(20, dtype=np.float32).reshape(10, 2)
    reader = StreamingReader(
        lambda: batches(lambda: iter([("mem", {"x": data})]), specs, batch_size=3, limit=None)
    )
    assert len(reader) == 4
    seen = []
    for start in (0, 2):
        reader.set_range(start_index=start, end_index=start + 2)
        while (batch := reader.get_next()) is not None:
            seen.append(batch["x"][:, 0].tolist())
    assert seen == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]
    reader.rewind()
    assert reader.get_next()["x"].shape == (3, 2)


def test_percentile_calibration_on_a_folder(tmp_path, trained):
    from onnxdeploy.models import load_digits_split

    folder = tmp_path / "calib"
    folder.mkdir()
    x = load_digits_split((64,)).x_train
    for i in range(0, 300, 100):
        np.savez(folder / f"part{i}.npz", input=x[i : i + 100])
    result = quantize(
        trained["mlp"],
        tmp_path / "q.onnx",
        calib=str(folder),
        config=QuantizeConfig(method="percentile", calib_size=250),
        acceptance=Acceptance(force_int8=True),
        timing=TimingPlan(iterations=10),
    )
    assert result.calib_samples == 224 and all(
        a.config.method == "percentile" for a in result.attempts
    )
