import json

import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.pipeline import load_recipe

QUICK = """
model = "digits_cnn"
seed = 1
[[stage]]
name = "train"
epochs = 2
[[stage]]
name = "compress"
epochs = 1
[[stage]]
name = "export"
[[stage]]
name = "prune-channels"
[[stage]]
name = "evaluate"
[[stage]]
name = "bench"
batch = [1, 8]
iterations = 5
"""


def test_run_end_to_end_reduced(cli, tmp_path):
    (tmp_path / "quick.toml").write_text(QUICK)
    code, out, err = cli("run", "quick.toml", "--runs-dir", "runs")
    assert code == 0, err
    runs = [p for p in (tmp_path / "runs").iterdir()]
    assert len(runs) == 1 and not runs[0].name.startswith(".")
    report = json.loads((runs[0] / "report.json").read_text())
    assert report["status"] == "passed"
    assert list(report["stages"]) == [
        "train",
        "compress",
        "export",
        "prune-channels",
        "evaluate",
        "bench",
    ]
    accuracy = report["stages"]["evaluate"]["accuracy"]
    assert set(accuracy) == {"dense", "compressed", "pruned"}
    assert 50 < accuracy["dense"] <= 100  # two epochs already learn digits well past chance (10%)
    assert abs(accuracy["dense"] - report["stages"]["train"]["torch_accuracy"]) <= 0.3
    assert accuracy["pruned"] == accuracy["compressed"]  # removing zero channels changes nothing
    assert report["stages"]["prune-channels"]["channels_removed"] > 0
    assert report["stages"]["prune-channels"]["macs_ratio"] < 0.5
    assert {r["batch"] for r in report["stages"]["bench"]["results"]} == {1, 8}
    assert (runs[0] / "model.onnx").is_file() and (runs[0] / "report.md").is_file()
    assert "accuracy" in (runs[0] / "report.md").read_text()
    html = (runs[0] / "report.html").read_text()  # one page: pruning per layer, latency charts
    pruning = html[html.index('<section id="pruning">') : html.index('<section id="gate">')]
    layers = report["stages"]["prune-channels"]["layers"]
    assert layers and all(f"<td>{layer['layer']}</td>" in pruning for layer in layers)
    assert html.count("box = quartiles") == 2  # batch 1 and batch 8
    assert "pruned" in out


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model = 'digits_cnn'\n", "no [[stage]]"),
        ("[[stage]]\nname = 'fly'\n", "unknown stage 'fly'"),
        ("[[stage]]\nname = 'train'\nepochz = 3\n", "has no option 'epochz'"),
        ("colour = 'red'\n[[stage]]\nname = 'train'\n", "unknown keys colour"),
        ("[[stage]\n", "not valid TOML"),
    ],
)
def test_bad_recipes(tmp_path, text, fragment):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=fragment.replace("[", r"\[")):
        load_recipe(path)


def test_bad_recipe_cli_exit_code(cli, tmp_path):
    (tmp_path / "r.toml").write_text("[[stage]]\nname = 'fly'\n")
    code, _, err = cli("run", "r.toml")
    assert code == 2 and "r.toml: unknown stage" in err


def test_failed_stage_leaves_a_failed_run_folder(cli, tmp_path):
    # a checkpoint that is not one: the recipe is well-formed, the compress stage fails when it loads it
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "r.toml").write_text(
        "model = 'mlp'\ncheckpoint = 'bad.pt'\n[[stage]]\nname = 'compress'\n"
    )
    code, _, err = cli("run", "r.toml", "--runs-dir", "runs")
    assert code == 2 and "error: bad.pt: " in err
    (failed_run,) = list((tmp_path / "runs").iterdir())
    assert failed_run.name.endswith("-failed")
    report = json.loads((failed_run / "report.json").read_text())
    assert report["status"] == "failed" and report["stages"]["compress"]["error"].startswith(
        "bad.pt: "
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        (
            "model = 'mlp'\n[[stage]]\nname = 'compress'\n",
            "needs a trained model: put 'train' first",
        ),
        (
            "[[stage]]\nname = 'evaluate'\n[[stage]]\nname = 'export'\n",
            "stage 'evaluate' needs onnx",
        ),
        (
            "[[stage]]\nname = 'export'\n[[stage]]\nname = 'export'\n",
            "stage 'export' appears twice",
        ),
        (
            "[[stage]]\nname = 'export'\n[[stage]]\nname = 'bench'\nbatch = '1,32'\n",
            "option 'batch' = '1,32': expected list of int or int",
        ),
        ("seed = 'abc'\n[[stage]]\nname = 'train'\n", "'seed' = 'abc': expected int"),
        ("[[stage]]\nname = 'train'\nepochs = 2.5\n", "expected int or none"),
    ],
)
def test_recipe_order_types_and_repeats_are_checked_before_running(cli, tmp_path, text, fragment):
    (tmp_path / "r.toml").write_text(text)
    code, _, err = cli("run", "r.toml", "--runs-dir", "runs")
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before a run folder (or a minute of training)
