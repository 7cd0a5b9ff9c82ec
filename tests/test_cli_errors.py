"""Every bad input exits 2 with one line that names the problem, and writes nothing."""

import pickle
from pathlib import Path

import pytest
import torch

from onnxdeploy.models import ZOO

TINY = Path(__file__).with_name("tiny_models.py")


class Payload:
    """Unpickling this would create a marker file: weights_only=True must refuse it."""

    def __reduce__(self):
        return (open, ("EXECUTED", "w"))


def assert_one_line_error(code, stderr, *fragments):
    assert code == 2, stderr
    lines = [l for l in stderr.strip().splitlines() if l]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in stderr


def test_unknown_model_name(cli):
    code, _, err = cli("export", "no_such_net", "-o", "x.onnx")
    assert_one_line_error(code, err, "unknown model 'no_such_net'", "digits_cnn")


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ("missing_file.py:make", "missing_file.py: no such file"),
        ("no_such_pkg_xyz.mod:make", "cannot import module"),
        (f"{TINY}:no_such_factory", "has no callable 'no_such_factory'"),
    ],
)
def test_bad_factory_paths(cli, ref, fragment):
    code, _, err = cli("export", ref, "--input-shape", "1x6", "-o", "x.onnx")
    assert_one_line_error(code, err, fragment)


def test_missing_checkpoint(cli):
    code, _, err = cli("export", "mlp", "--checkpoint", "nope.pt", "-o", "x.onnx")
    assert_one_line_error(code, err, "nope.pt: checkpoint not found")


def test_checkpoint_with_mismatched_keys(cli, tmp_path):
    torch.save(ZOO["digits_cnn"].build().state_dict(), tmp_path / "other.pt")
    code, _, err = cli("export", "mlp", "--checkpoint", tmp_path / "other.pt", "-o", "x.onnx")
    assert_one_line_error(code, err, "does not match the model")
    assert not (tmp_path / "x.onnx").exists()


def test_checkpoint_with_wrong_tensor_sizes(cli, tmp_path):
    state = ZOO["mlp"].build().state_dict()
    state["net.0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "sizes.pt")
    code, _, err = cli("export", "mlp", "--checkpoint", tmp_path / "sizes.pt", "-o", "x.onnx")
    assert_one_line_error(code, err, "does not match the model")


def test_pickled_object_checkpoint_is_refused_not_executed(cli, tmp_path):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        code, _, err = cli("export", "mlp", "--checkpoint", tmp_path / name, "-o", "x.onnx")
        assert_one_line_error(code, err, name)
        assert "refused" in err or "not a readable" in err
    assert not (tmp_path / "EXECUTED").exists()


@pytest.mark.parametrize("shape", ["1x", "axb", "1x0x3", "-1x3", ""])
def test_malformed_input_shape(cli, shape):
    code, _, err = cli("export", "mlp", "--input-shape", shape, "-o", "x.onnx")
    assert_one_line_error(code, err, "--input-shape")


def test_unwritable_output_folder(cli, tmp_path):
    (tmp_path / "a_file").write_text("x")
    code, _, err = cli("export", "mlp", "-o", tmp_path / "a_file" / "out.onnx")
    assert_one_line_error(code, err, "out.onnx", "cannot create output folder")


def test_parity_failure_exits_1(cli, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY.parent))
    code, _, err = cli(
        "export",
        "tiny_models:lies_during_export",
        "--input-shape",
        "1x6",
        "--exporter",
        "torchscript",
        "-o",
        "out.onnx",
    )
    assert code == 1
    assert "parity check failed" in err
    assert not (tmp_path / "out.onnx").exists()


def test_debug_shows_traceback(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from onnxdeploy.cli import main
    from onnxdeploy.errors import UserError

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--debug", "export", "no_such_net", "-o", "x.onnx"])
    # the traceback, and still the exit code of the error (--debug turned exit 2 into exit 1)
    assert result.exit_code == UserError.exit_code == 2
    assert "Traceback" in result.stderr and "UserError" in result.stderr


def test_an_opset_onnx_does_not_know_is_exit_2_before_exporting(cli, tmp_path):
    for opset in ("99", "3"):
        code, _, err = cli("export", "digits_cnn", "--opset", opset, "-o", "o.onnx")
        assert code == 2 and "--opset" in err and opset in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.onnx").exists()


def test_training_that_diverges_exits_1_and_writes_nothing(cli, tmp_path):
    code, _, err = cli("compress", "mlp", "--sparsity", "0.5", "--lr", "1e30", "--epochs", "1",
                       "-o", "nan.pt")
    assert code == 1 and "training diverged" in err and "lower the learning rate" in err, err
    assert not (tmp_path / "nan.pt").exists()
