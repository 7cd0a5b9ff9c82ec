"""Label-free distillation: compress a detector-like model with inputs only (no labels)."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from onnxdeploy.cli import main
from onnxdeploy.compress import CompressConfig, compress
from onnxdeploy.compress.label_free import matching_loss, output_fidelity
from tests.edge_blocks import yolo_like

MODEL = "tests/edge_blocks.py:yolo_like"


@pytest.fixture()
def unlabelled(tmp_path):
    """A dense checkpoint and an .npz of inputs with no y_train/y_val."""
    torch.manual_seed(0)
    checkpoint = tmp_path / "dense.pt"
    torch.save(yolo_like().state_dict(), checkpoint)
    rng = np.random.default_rng(0)
    data = tmp_path / "images.npz"
    np.savez(
        data,
        x_train=rng.standard_normal((96, 3, 16, 16), dtype=np.float32),
        x_val=rng.standard_normal((32, 3, 16, 16), dtype=np.float32),
    )
    return checkpoint, data


def test_fidelity_is_100_for_the_model_itself_and_drops_when_outputs_change():
    torch.manual_seed(0)
    model = yolo_like().eval()
    x = np.random.default_rng(1).standard_normal((8, 3, 16, 16), dtype=np.float32)
    assert output_fidelity(model, model, x) == pytest.approx(100.0)
    noisy = yolo_like().eval()
    assert output_fidelity(noisy, model, x) < 50.0
    with torch.no_grad():
        out = model(torch.as_tensor(x))
    assert float(matching_loss(out, out)) == 0.0


def test_label_free_distillation_lowers_a_pruned_detectors_output_error(tmp_path, unlabelled):
    checkpoint, data = unlabelled
    config = CompressConfig(
        channel_ratio=0.5, sensitivity=False, distill=True, epochs=6, lr=3e-3, seed=0
    )
    result = compress(
        MODEL,
        tmp_path / "small.pt",
        config,
        checkpoint=str(checkpoint),
        data=str(data),
        input_shapes=[(1, 3, 16, 16)],
    )
    assert result.metric == "fidelity" and result.dense_accuracy == pytest.approx(100.0)
    pruned, distilled = result.steps
    assert pruned.channels_zeroed > 0 and distilled.channels_zeroed == pruned.channels_zeroed
    assert distilled.accuracy > pruned.accuracy + 5.0, (pruned.accuracy, distilled.accuracy)
    assert "fidelity" in str(result)


def test_no_labels_without_distill_is_a_user_error(tmp_path, unlabelled):
    checkpoint, data = unlabelled
    out = tmp_path / "small.pt"
    result = CliRunner().invoke(
        main,
        [
            "compress",
            MODEL,
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(data),
            "--input-shape",
            "1x3x16x16",
            "--prune-channels",
            "0.5",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--distill" in result.output and not out.exists()
