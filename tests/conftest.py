import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from onnxdeploy.cli import main


def _cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return (
        shutil.which("nvidia-smi") is not None
        and subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0
    )


HAS_CUDA = _cuda_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with onnxruntime-gpu")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Invoke the CLI in tmp_path; returns (exit_code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _tiny_hf(tmp_path_factory, name: str, make):
    """A random-init Hugging Face model built by ``make(transformers)`` and saved with save_pretrained
    (nothing is downloaded); skips without the optional [hf] extra."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp(name)
    transformers.set_seed(0)
    make(transformers).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return _tiny_hf(
        tmp_path_factory,
        "bert",
        lambda tf: tf.BertForSequenceClassification(
            tf.BertConfig(
                vocab_size=99,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=37,
                max_position_embeddings=64,
                num_labels=3,
            )
        ),
    )


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    return _tiny_hf(
        tmp_path_factory,
        "vit",
        lambda tf: tf.ViTForImageClassification(
            tf.ViTConfig(
                image_size=32,
                patch_size=8,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=37,
                num_labels=5,
            )
        ),
    )


@pytest.fixture
def small_model(tmp_path):
    """Two 3x3 convs (3 -> 4 -> 2 channels) on 8x8 inputs, saved as m.onnx in tmp_path."""
    import onnx

    from tests.onnx_graphs import GraphBuilder

    g = GraphBuilder(shape=(1, 3, 8, 8))
    path = tmp_path / "m.onnx"
    onnx.save(g.model(g.conv(g.op("Relu", g.conv("x", 3, 4)), 4, 2)), str(path))
    return path


def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
