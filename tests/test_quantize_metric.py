"""A user's own quality metric (``--metric file.py:fn``) scores quantize and run MODEL in its own
units, in place of top-1 or SNR (issue 29: quality judged as the task needs)."""

import json

import numpy as np
import pytest

from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.pipeline import RunRequest, run_model
from onnxdeploy.quantize import Acceptance, QuantizeConfig, TimingPlan, quantize
from tests.test_run_model import _conv_classifier

METRICS = '''
import numpy as np

seen = {}


def close(outputs, data):
    """100 while the outputs stay within 1e-4 of the first ones it saw (fp32's), else 0: no int8
    model can hold it."""
    out = next(iter(outputs.values()))
    reference = seen.setdefault("fp32", out)
    return 100.0 if np.allclose(out, reference, atol=1e-4) else 0.0


def positive(outputs, data):
    """The share of positive outputs, in percent: int8 keeps it to about a point."""
    assert set(data) == {"x"}, sorted(data)
    return float(100 * (next(iter(outputs.values())) > 0).mean())


def boom(outputs, data):
    raise KeyError("boxes")


def text(outputs, data):
    return "good"
'''


@pytest.fixture
def metrics(tmp_path):
    path = tmp_path / f"metrics_{tmp_path.name}.py"  # a module name of its own per test
    path.write_text(METRICS)
    return path


def _quantize(model, out, metric, max_drop):
    return quantize(
        model,
        out,
        calib="random",
        config=QuantizeConfig(calib_size=64),
        acceptance=Acceptance(max_drop=max_drop, metric=metric, force_int8=True),
        timing=TimingPlan(iterations=10),
    )


def test_the_users_metric_scores_every_candidate_in_its_units(small_model, metrics, tmp_path):
    result = _quantize(small_model, tmp_path / "q.onnx", f"{metrics}:positive", max_drop=5.0)
    assert result.metric == "metric"
    scored = [a for a in result.attempts if not a.error]
    assert scored and all(a.score != a.snr_db for a in scored)  # not SNR in disguise
    assert all(abs(a.drop - (result.fp32_score - a.score)) < 1e-9 for a in scored)
    assert result.chosen != "fp32" and 0 < result.fp32_score < 100
    assert "the drop of" in result.reason and "positive" in result.reason
    assert json.loads(json.dumps(result.to_json()))["metric"] == "metric"


def test_a_metric_no_int8_model_holds_fails_the_check(metrics, tmp_path):
    model = _conv_classifier(tmp_path / "m.onnx")  # three layers: ends-fp32 still quantizes one
    with pytest.raises(CheckFailed) as info:
        _quantize(model, tmp_path / "q.onnx", f"{metrics}:close", max_drop=1.0)
    rows = [a for a in info.value.result.attempts if not a.error and a.config.name == "isa-default"]
    assert rows and rows[0].score == 0.0 and rows[0].drop == 100.0 and not rows[0].passed
    assert rows[0].snr_db > 20  # the default SNR floor alone would have passed it
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("boom", "the metric raised KeyError: 'boxes'"),
        ("text", "the metric returned 'good'; it must return a finite number"),
        ("nope", "has no callable 'nope'"),
    ],
)
def test_a_broken_metric_is_exit_2_naming_it(cli, small_model, metrics, name, fragment):
    code, _, err = cli(
        "quantize", small_model, "-o", "q.onnx", "--calib", "random", "--metric",
        f"{metrics.name}:{name}",  # relative to the working directory, as a user types it
    )
    assert code == 2, err
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert fragment in line and metrics.name in line
    assert not (small_model.parent / "q.onnx").exists()


def test_metric_refused_where_it_cannot_apply(cli, small_model, metrics):
    code, _, err = cli("quantize", small_model, "-o", "q.onnx", "--fp16", "--metric", f"{metrics}:positive")
    assert code == 2 and "--metric: does not apply with --fp16" in err
    code, _, err = cli("quantize", small_model, "-o", "q.onnx", "--calib", "random", "--metric", "gone.py:f")
    assert code == 2 and "gone.py: no such file" in err


def test_run_model_judges_its_variants_by_the_metric(tmp_path, metrics, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _conv_classifier(tmp_path / "m.onnx")
    report = run_model(
        RunRequest(str(model), runs_dir="runs", target_batch=4, metric=f"{metrics.name}:close")
    )
    select = report.to_json()["stages"]["select"]
    variants = {v["model"]: v for v in select["variants"]}
    assert {v["metric"] for v in variants.values()} == {"metric"}
    assert variants["pruned"]["drop"] == 0.0  # zero-channel removal is exact
    assert not any("int8" in name for name in variants)  # none held the metric
    assert select["chosen"] in ("fp32", "pruned")
    (run_dir,) = (tmp_path / "runs").iterdir()
    recipe = (run_dir / "recipe.toml").read_text()
    assert f'metric = "{metrics.resolve()}:close"' in recipe  # reproducible from anywhere
    with pytest.raises(UserError, match="no such file"):
        RunRequest(str(model), metric="gone.py:f")


@pytest.mark.extra
def test_compress_judges_recovery_by_the_users_metric(cli, tmp_path):
    """The same metric file in compress: a top-1 written by the user equals the built-in one."""
    (tmp_path / "top1.py").write_text(
        "import numpy as np\n"
        "def top1(outputs, data):\n"
        "    return float(100 * np.mean(outputs['logits'].argmax(1) == data['labels']))\n"
    )
    import torch

    from onnxdeploy.models import ZOO
    from onnxdeploy.models.train import train

    torch.manual_seed(0)
    entry = ZOO["mlp"]
    digits, model = entry.digits(), entry.build()
    train(model, digits.x_train, digits.y_train, epochs=2, lr=entry.lr)
    torch.save(model.state_dict(), tmp_path / "mlp.pt")
    common = ["compress", "mlp", "--checkpoint", "mlp.pt", "--prune-channels", "0.5", "--epochs",
              "1", "--json"]
    code, out, err = cli(*common, "-o", "a.pt", "--metric", "top1.py:top1")
    assert code == 0, err
    ours = json.loads(out)
    code, out, err = cli(*common, "-o", "b.pt")
    assert code == 0, err
    builtin = json.loads(out)
    assert ours["metric"] == "metric" and builtin["metric"] == "top-1"
    assert ours["dense_accuracy"] == pytest.approx(builtin["dense_accuracy"], abs=1e-6)
    code, _, err = cli("compress", "mlp", "--prune-channels", "0.5", "-o", "c.pt", "--metric", "x.py:f")
    assert code == 2 and "x.py: no such file" in err and not (tmp_path / "c.pt").exists()
