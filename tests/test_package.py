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

    real = build._round_trip
    monkeypatch.setattr(
        build, "_round_trip", lambda *a, **k: real(*a, **{**k, "atol": -1.0, "rtol": 0.0})
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
