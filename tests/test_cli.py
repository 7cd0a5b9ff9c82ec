import json
import re

import pytest

from onnxdeploy import __version__
from onnxdeploy.cli import COMMANDS
from tests.conftest import run_python


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and __version__ in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(cli, command):
    code, out, _ = cli(command, "--help")
    assert code == 0 and "Usage:" in out


def test_export_then_inspect(cli, tmp_path):
    code, out, err = cli("export", "resnet_tiny", "-o", "r.onnx")
    assert code == 0, err
    assert "parity vs PyTorch" in out and re.search(r"logits\s+\S+e-\d+", out)
    code, out, _ = cli("inspect", "r.onnx", "--json")
    data = json.loads(out)
    assert data["inputs"][0]["shape"][0] == "batch"
    assert data["op_histogram"]["Add"] == 3  # three residual adds survive export


def test_torch_free_core():
    """import onnxdeploy and the torch-free commands must not import torch."""
    result = run_python(
        "import sys\n"
        "import onnxdeploy, onnxdeploy.cli, onnxdeploy.inspect_model, onnxdeploy.runtime_bench\n"
        "import onnxdeploy.exporter, onnxdeploy.models, onnxdeploy.pipeline\n"
        "from click.testing import CliRunner\n"
        "r = CliRunner().invoke(onnxdeploy.cli.main, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "for name in onnxdeploy.cli.COMMANDS:\n"
        "    onnxdeploy.cli.main.get_command(None, name)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if bad else 'CLEAN')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "CLEAN"


def test_quiet_works_before_and_after_the_subcommand(cli, tmp_path):
    from tests.test_inspect import legacy_opset9_model

    path = legacy_opset9_model(tmp_path / "legacy.onnx")
    for args in (("-q", "inspect", path), ("inspect", path, "-q"), ("inspect", path, "--quiet")):
        code, out, _ = cli(*args)
        assert code == 0 and out == ""
    code, out, _ = cli("inspect", path, "-q", "--json")
    assert code == 0 and '"ir_version": 3' in out


def test_onnx_only_commands_run_without_importing_torch(tmp_path):
    """inspect, optimize, prune-channels, quantize, bench and gate run with torch made unimportable.

    ``sys.modules['torch'] = None`` is what a machine without torch looks like to importlib (find_spec
    returns None, ``import torch`` fails), so this checks the commands really work without it.
    """
    script = f"""
import sys, os
sys.modules["torch"] = None
os.chdir({str(tmp_path)!r})
sys.path.insert(0, {str(tmp_path.parent)!r})
import onnx
from click.testing import CliRunner
from onnxdeploy.cli import main
sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent.parent)!r})
from tests.onnx_graphs import GraphBuilder
g = GraphBuilder()
onnx.save(g.model(g.conv(g.op("Relu", g.conv("x", 3, 4, zero=(1,))), 4, 2)), "m.onnx")
runner = CliRunner()
for args in (["inspect", "m.onnx"], ["optimize", "m.onnx", "-o", "o.onnx"], ["prune-channels", "m.onnx", "-o", "p.onnx"],
             ["quantize", "p.onnx", "-o", "q.onnx", "--calib", "random", "--calib-size", "32", "--force-int8",
              "--max-drop", "100"],
             ["bench", "p.onnx", "--iterations", "5", "-o", "b.json"],
             ["gate", "--baseline", "b.json", "--current", "b.json"]):
    result = runner.invoke(main, args)
    assert result.exit_code == 0, (args, result.output)
print("TORCH" if any(m.startswith("torch.") for m in sys.modules) or sys.modules["torch"] is not None else "CLEAN")
"""
    result = run_python(script)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "CLEAN"
