import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from onnxdeploy.compress import CompressConfig, find_groups, prune_uniform
from onnxdeploy.compress.api import compress_module
from onnxdeploy.compress.finetune import distillation_loss, fine_tune
from onnxdeploy.compress.magnitude import magnitude_prune, prunable_weights
from onnxdeploy.compress.sensitivity import allocate
from onnxdeploy.exporter import export
from onnxdeploy.models import ZOO
from onnxdeploy.models.train import evaluate
from onnxdeploy.passes import prune_channels


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_magnitude_sparsity_reaches_the_target(scope):
    torch.manual_seed(0)
    model = ZOO["resnet_tiny"].build()
    report = magnitude_prune(model, 0.8, scope=scope)
    weights = prunable_weights(model)
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    assert abs(zeros - round(0.8 * total)) <= (len(weights) if scope == "layer" else 0)
    assert report["total"] == pytest.approx(zeros / total)
    if scope == "layer":
        assert all(abs(v - 0.8) < 0.02 for k, v in report.items() if k != "total")
    assert not any(
        "mask" in k or "orig" in k for k in model.state_dict()
    )  # permanent, no masks left


def _zero_rows(weight):
    return set(
        torch.nonzero((weight.detach().reshape(weight.shape[0], -1) == 0).all(1)).flatten().tolist()
    )


def test_structured_pruning_zeroes_whole_coupled_groups():
    torch.manual_seed(0)
    model = ZOO["resnet_tiny"].build().eval()
    modules = dict(model.named_modules())
    groups = find_groups(model)
    residual = next(g for g in groups if "layers.1.shortcut.0" in g.producers)
    assert set(residual.producers) == {"layers.1.body.1.0", "layers.1.shortcut.0"}
    prune_uniform(model, 0.5)
    for group in groups:
        expected = None
        for name in group.producers:
            zeros = _zero_rows(modules[name].weight)
            assert len(zeros) == group.size // 2
            expected = zeros if expected is None else expected
            assert zeros == expected  # both sides of the residual add lose the same channels
        for name in group.members:
            assert (
                set(torch.nonzero(modules[name].weight.detach() == 0).flatten().tolist())
                >= expected
            )
    x = torch.randn(3, 1, 16, 16)
    assert model(x).shape == (3, 10)


def test_depthwise_is_coupled_with_its_expand_conv():
    groups = find_groups(ZOO["mobilenet_tiny"].build())
    expand = next(g for g in groups if g.producers == ["blocks.0.block.0.0"])
    assert "blocks.0.block.1.0" in expand.members  # the depthwise conv


def test_distillation_loss_matches_hand_computation():
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 2.0]])
    labels = torch.tensor([1, 2])
    t, alpha = 4.0, 0.7
    kl = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        ps = [math.exp(v / t) for v in s_row]
        pt = [math.exp(v / t) for v in t_row]
        ps = [p / sum(ps) for p in ps]
        pt = [p / sum(pt) for p in pt]
        kl += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    kl /= 2
    ce = float(F.cross_entropy(student, labels))
    expected = alpha * t * t * kl + (1 - alpha) * ce
    assert float(
        distillation_loss(student, teacher, labels, temperature=t, alpha=alpha)
    ) == pytest.approx(expected, rel=1e-5)
    assert float(
        distillation_loss(student, teacher, labels, temperature=t, alpha=0.0)
    ) == pytest.approx(ce, rel=1e-6)


def test_fine_tuning_repairs_a_damaged_model_and_keeps_zeros():
    torch.manual_seed(0)
    entry = ZOO["mlp"]
    data = entry.digits()
    model = entry.build()
    from onnxdeploy.models.train import train

    train(model, data.x_train, data.y_train, epochs=6)
    prune_uniform(model, 0.75)
    magnitude_prune(model, 0.6)
    damaged = evaluate(model, data.x_val, data.y_val)
    zeros_before = {n: (p == 0).clone() for n, p in model.named_parameters()}
    fine_tune(model, data, epochs=3, lr=3e-3)
    repaired = evaluate(model, data.x_val, data.y_val)
    assert repaired > damaged + 5
    for name, p in model.named_parameters():
        assert bool((p[zeros_before[name]] == 0).all()), name


def test_allocation_gives_stable_groups_more():
    scan = [{0.25: 5.0, 0.5: 20.0, 0.75: 40.0}, {0.25: 0.0, 0.5: 0.0, 0.75: 1.0}]
    ratios = allocate(scan, [32, 32], 0.5)
    assert ratios[1] > ratios[0]
    assert sum(ratios) / 2 == pytest.approx(0.5)


def test_compressed_checkpoint_round_trips_through_export_and_prune(tmp_path):
    torch.manual_seed(0)
    entry = ZOO["resnet_tiny"]
    data = entry.digits()
    model = entry.build()
    result = compress_module(
        model, data, CompressConfig(channel_ratio=0.5, sensitivity=False, epochs=1, distill=True)
    )
    assert result.steps[-1].channels_zeroed > 0
    ckpt = tmp_path / "c.pt"
    torch.save(model.state_dict(), ckpt)
    assert torch.load(ckpt, weights_only=True)
    export("resnet_tiny", tmp_path / "c.onnx", checkpoint=str(ckpt))
    report = prune_channels(tmp_path / "c.onnx", tmp_path / "p.onnx")
    assert report.comparison and report.comparison.max_abs < 1e-4
    assert report.passes["prune-channels"]["channels_removed"] == sum(
        g.size // 2 for g in find_groups(model)
    )
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((5, 1, 16, 16)).astype(np.float32)
    y = ort.InferenceSession(str(tmp_path / "p.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(
        y, model.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"x_train": np.zeros((4, 64), np.float32)}, "missing arrays"),
        (
            {
                "x_train": np.zeros((4, 64), np.float32),
                "y_train": np.zeros(3, np.int64),
                "x_val": np.zeros((2, 64), np.float32),
                "y_val": np.zeros(2, np.int64),
            },
            "has 4 samples but y_train has 3",
        ),
        (
            {
                "x_train": np.zeros((4, 32), np.float32),
                "y_train": np.zeros(4, np.int64),
                "x_val": np.zeros((2, 32), np.float32),
                "y_val": np.zeros(2, np.int64),
            },
            "the model expects [64]",
        ),
        (
            {
                "x_train": np.zeros((4, 64), np.float32),
                "y_train": np.zeros(4, np.float32),
                "x_val": np.zeros((2, 64), np.float32),
                "y_val": np.zeros(2, np.int64),
            },
            "integer class labels",
        ),
        (
            {
                "x_train": np.zeros((4, 64), np.float32),
                "y_train": np.zeros(4, np.int64),
                "x_val": np.zeros((2, 64), np.float32),
                "y_val": np.array([0, -1]),
            },
            "labels run from -1 to 0",
        ),
    ],
)
def test_bad_data_files_exit_2(cli, tmp_path, arrays, fragment):
    np.savez(tmp_path / "d.npz", **arrays)
    code, _, err = cli(
        "compress", "mlp", "--data", "d.npz", "--prune-channels", "0.5", "-o", "c.pt"
    )
    assert code == 2, err
    assert "d.npz" in err and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.pt").exists()


def test_labels_past_the_models_classes_exit_2_before_a_step(cli, tmp_path):
    """A label of 99 for a 10-class model was an IndexError inside torch's loss (exit 3)."""
    x = np.zeros((8, 64), np.float32)
    y = np.array([0, 1, 2, 3, 4, 5, 6, 99])
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_val=x[:2], y_val=y[:2])
    code, _, err = cli("compress", "mlp", "--data", "d.npz", "--prune-channels", "0.5", "-o", "c.pt")
    assert code == 2 and "labels run from 0 to 99; class labels are 0..9" in err, err
    assert [x for x in err.splitlines() if x.startswith("error")] == [err.strip().splitlines()[-1]]
    assert not (tmp_path / "c.pt").exists()


def test_compress_cli_with_npz_data(cli, tmp_path):
    entry = ZOO["mlp"]
    d = entry.digits()
    np.savez(tmp_path / "d.npz", x_train=d.x_train, y_train=d.y_train, x_val=d.x_val, y_val=d.y_val)
    code, out, err = cli(
        "--quiet",
        "compress",
        "mlp",
        "--data",
        "d.npz",
        "--sparsity",
        "0.5",
        "--epochs",
        "1",
        "--json",
        "-o",
        "c.pt",
    )
    assert code == 0, err
    import json

    data = json.loads(out)
    assert data["layer_sparsity"]["total"] == pytest.approx(0.5, abs=0.01)
    assert (tmp_path / "c.pt").is_file()


@pytest.mark.parametrize("mode, most", [("binary", 2), ("ternary", 3)])
def test_low_bit_weights_are_exact_and_reported(mode, most, tmp_path):
    from onnxdeploy.compress.lowbit import (
        distinct_values_per_channel,
        low_bit_layers,
        quantize_weight,
    )

    torch.manual_seed(0)
    entry = ZOO["mlp"]
    data = entry.digits()
    model = entry.build()
    from onnxdeploy.models.train import train

    train(model, data.x_train, data.y_train, epochs=4)
    result = compress_module(model, data, CompressConfig(low_bit=mode, epochs=2, lr=2e-3))
    for layer in low_bit_layers(model):
        assert distinct_values_per_channel(layer.weight) <= most
        torch.testing.assert_close(layer.weight, quantize_weight(layer.weight, mode))
    assert not any("parametrizations" in k for k in model.state_dict())
    assert result.steps[-1].name.startswith(mode) and result.final_accuracy > 50
    torch.save(model.state_dict(), tmp_path / "lb.pt")
    assert export("mlp", tmp_path / "lb.onnx", checkpoint=str(tmp_path / "lb.pt")).parity


def test_a_ternary_trained_layer_comes_out_as_int8_weights_equal_to_the_trained_ones(tmp_path):
    """compress --low-bit ternary, export, quantize: each inner layer's int8 weights are -1/0/+1 with the
    per-channel scale a, and scale * q equals the trained float weights bit for bit."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from onnxdeploy.compress.lowbit import low_bit_layers
    from onnxdeploy.models.train import train
    from onnxdeploy.quantize import Acceptance, QuantizeConfig, TimingPlan, quantize
    from onnxdeploy.quantize.configs import candidates
    from onnxdeploy.quantize.isa import decide

    torch.manual_seed(0)
    entry = ZOO["mlp"]
    data = entry.digits()
    model = entry.build()
    train(model, data.x_train, data.y_train, epochs=4)
    compress_module(model, data, CompressConfig(low_bit="ternary", epochs=1, lr=2e-3))
    trained = {
        name: layer.weight.detach().numpy().copy()
        for name, layer in ((n, m) for n, m in model.named_modules() if m in low_bit_layers(model))
    }
    torch.save(model.state_dict(), tmp_path / "t.pt")
    export("mlp", tmp_path / "t.onnx", checkpoint=str(tmp_path / "t.pt"))
    float_model = onnx.load(str(tmp_path / "t.onnx"))
    # an MLP is MatMul-dominated, but its ternary layers keep static QDQ (exact) first
    assert candidates(decide({"avx2"}), float_model, QuantizeConfig())[0].name == "isa-default"
    result = quantize(
        tmp_path / "t.onnx",
        tmp_path / "q.onnx",
        calib="digits",
        eval_data="digits",
        config=QuantizeConfig(method="minmax", calib_size=128),
        timing=TimingPlan(iterations=5),
        acceptance=Acceptance(force_int8=True, max_drop=100),
    )
    assert len(result.low_bit) == len(trained) and all(
        w["kind"] == "ternary" for w in result.low_bit.values()
    )
    quantized = onnx.load(str(tmp_path / "q.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    for name, weight in trained.items():
        q, scale = inits[f"{name}.weight_quantized"], inits[f"{name}.weight_scale"]
        assert q.dtype == np.int8 and set(np.unique(q)) <= {-1, 0, 1}
        axis = (
            0 if q.shape == weight.shape else 1
        )  # Gemm(transB) keeps (out, in); MatMul holds (in, out)
        restored = q.astype(np.float32) * np.expand_dims(scale, 1 - axis)
        assert np.array_equal(restored if axis == 0 else restored.T, weight)
        assert result.low_bit[f"{name}.weight"]["exact"]
    assert any("stored exactly as int8" in n for n in result.notes)


def test_choose_channels_takes_evenly_from_blocks():
    import numpy as np

    from onnxdeploy.compress.structured import choose_channels

    scores = np.array([5, 1, 2, 6, 0.1, 0.2, 0.3, 9], dtype=float)
    assert choose_channels(scores, 0.5) == [1, 4, 5, 6]
    assert choose_channels(scores, 0.5, blocks=2) == [1, 2, 4, 5]  # two from each half
    assert choose_channels(scores, 0.9, blocks=4) == [1, 2, 4, 6]  # one of each pair at most


def test_pruned_widths_are_kept_to_multiples_of_round_to():
    import numpy as np

    from onnxdeploy.compress.structured import choose_channels, kept_channels

    assert kept_channels(72, 0.48) == 37  # unrounded: an odd width
    assert kept_channels(72, 0.48, 8) == 40  # the nearest multiple of 8
    assert kept_channels(72, 0.48, 16) == 32
    assert kept_channels(24, 0.9, 8) == 8  # at least one multiple
    assert kept_channels(6, 0.5, 8) == 3  # narrower than one multiple: not rounded
    assert kept_channels(16, 0.05, 8) == 16  # nothing pruned stays nothing pruned
    scores = np.arange(72, dtype=float)
    assert choose_channels(scores, 0.48, round_to=8) == list(range(32))
