"""onnxdeploy package: ORT format for a target, required operators, manifest.json with provenance and
hashes, the round trip checked, nothing left half-written (torch-free)."""

import json

import numpy as np
import pytest


@pytest.mark.parametrize("target", ["x86", "arm64", "mobile"])
def test_package_round_trips_an_ort_file_and_writes_a_manifest(cli, small_model, tmp_path, target):
    import onnxruntime as ort

    code, out, err = cli("package", small_model, "-o", "pkg", "--target", target, "--json")
    assert code == 0, err
    report = json.loads(out)
    folder = tmp_path / "pkg"
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.ort",
        "required_operators.config",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == report["manifest"] and report["passed"] and manifest["round_trip"]["passed"]
    assert manifest["target"]["name"] == target and manifest["model"]["opsets"] == {"ai.onnx": 17}
    from onnxdeploy.hashing import sha256_file

    for name, entry in manifest["files"].items():
        assert (
            entry["sha256"] == sha256_file(folder / name)
            and entry["bytes"] == (folder / name).stat().st_size
        )
    assert manifest["model"]["input_sha256"] == sha256_file(small_model)
    assert "Conv" in (folder / "required_operators.config").read_text() and report["operators"] >= 2
    # the ORT file runs and computes what the ONNX model computes
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    (got,) = ort.InferenceSession(str(folder / "model.ort")).run(None, {"x": x})
    (want,) = ort.InferenceSession(str(small_model)).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".pkg")
    ]  # no staging folder left


def test_manifest_hashes_follow_the_calibration_data(cli, small_model, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", x=rng.standard_normal((64, 3, 8, 8)).astype(np.float32))
    hashes = []
    for run, calib in enumerate(("a", "b", "a")):
        code, _, err = cli(
            "quantize",
            small_model,
            "-o",
            f"q{run}.onnx",
            "--calib",
            f"{calib}.npz",
            "--calib-size",
            "32",
            "--max-drop",
            "100",
            "--force-int8",
            "--iterations",
            "3",
        )
        assert code == 0, err
        code, _, err = cli("package", f"q{run}.onnx", "-o", f"p{run}")
        assert code == 0, err
        manifest = json.loads((tmp_path / f"p{run}" / "manifest.json").read_text())
        quantization = manifest["provenance"]["quantization"]
        assert quantization["calibration"]["samples"] == 32 and quantization["target_threads"] >= 1
        hashes.append(quantization["calibration"]["sha256"])
    assert (
        hashes[0] != hashes[1] and hashes[0] == hashes[2]
    )  # changes with the data, and only with it


def test_package_errors_are_exit_2_and_write_nothing(cli, small_model, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    code, _, err = cli("package", small_model, "-o", "full")
    assert (
        code == 2
        and "not an empty folder" in err
        and (tmp_path / "full" / "keep.txt").read_text() == "mine"
    )
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    code, _, err = cli("package", "bad.onnx", "-o", "out")
    assert code == 2 and "bad.onnx" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    code, _, err = cli("package", small_model, "-o", "out", "--target", "riscv")
    assert code == 2
    (tmp_path / "empty").mkdir()  # an empty folder is fine
    code, _, err = cli("package", small_model, "-o", "empty")
    assert code == 0, err


def test_a_failed_round_trip_is_exit_1_and_writes_nothing(small_model, tmp_path, monkeypatch):
    from onnxdeploy.errors import CheckFailed
    from onnxdeploy.package import build

    real = build.round_trip
    monkeypatch.setattr(
        build, "round_trip", lambda *a, **k: real(*a, **{**k, "atol": -1.0, "rtol": 0.0})
    )
    with pytest.raises(CheckFailed) as info:
        build.package(small_model, tmp_path / "pkg")
    assert "not written" in str(info.value) and not info.value.result.passed
    assert not (tmp_path / "pkg").exists() and not [
        p for p in tmp_path.iterdir() if p.name.startswith(".pkg")
    ]


def test_manifest_lists_the_passes_applied(cli, small_model, tmp_path):
    code, _, err = cli("optimize", small_model, "-o", "o.onnx")
    assert code == 0, err
    code, _, err = cli("prune-channels", "o.onnx", "-o", "p.onnx")
    assert code == 0, err
    code, out, err = cli("package", "p.onnx", "-o", "pkg", "--json")
    assert code == 0, err
    passes = [p["pass"] for p in json.loads(out)["manifest"]["provenance"]["passes"]]
    assert passes[-1] == "prune-channels" and len(passes) >= 2  # optimize's passes first, in order


def _strided_net(path):
    """A net that halves its input five times and adds the full-size branch back after upsampling:
    it runs only where the symbolic sides are multiples of 32 (as a detector's or OCR net's
    stride)."""
    from tests.onnx_graphs import GraphBuilder

    import onnx
    from onnx import TensorProto, helper

    g = GraphBuilder(shape=(1, 3, 8, 8), seed=1)
    g.inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])]
    a = down = g.op("Relu", g.conv("x", 3, 4))
    for _ in range(5):
        down = g.op("MaxPool", down, kernel_shape=[2, 2], strides=[2, 2])
    up = g.op("Resize", down, "", g.const(np.array([1, 1, 32, 32], np.float32)), mode="nearest")
    onnx.save(g.model(g.op("Add", a, up)), path)
    return path


def test_round_trip_finds_sizes_a_strided_net_runs_at_or_asks_for_them(cli, tmp_path):
    model = _strided_net(tmp_path / "strided.onnx")
    code, out, err = cli("package", model, "-o", "auto")
    assert code == 0, err
    manifest = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert manifest["round_trip"]["passed"]  # 16 does not run; 32 does, and it says so
    assert manifest["round_trip"]["inputs"].startswith("symbolic dims verified at 32")
    code, _, err = cli("package", model, "-o", "odd", "--shape", "x=1x3x40x40")
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error:") and "--shape" in last and "--input" in last
    assert "given shapes" in last and not (tmp_path / "odd").exists()
    np.savez(tmp_path / "real.npz", x=np.random.default_rng(0).random((3, 3, 64, 96), np.float32))
    code, _, err = cli("package", model, "-o", "real", "--input", "real.npz")
    assert code == 0, err
    manifest = json.loads((tmp_path / "real" / "manifest.json").read_text())
    assert manifest["round_trip"]["inputs"] == "on the given inputs"
    code, _, err = cli("package", model, "-o", "none", "--input", "missing.npz")
    assert code == 2 and "missing.npz" in err
