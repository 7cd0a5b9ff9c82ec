import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from onnxdeploy.cli import COMMANDS
from onnxdeploy.gate import Thresholds, gate, update_baseline
from onnxdeploy.gate.statistics import mann_whitney_u
from onnxdeploy.runtime_bench import BenchResult, LatencyStats, save_results

ENV = {"cpu": "Test CPU", "cores": 2, "onnxruntime": "1.0", "machine": "x86_64"}


def bench_file(path, samples, *, model="m.onnx", env=ENV, batch=1):
    samples = [float(s) for s in samples]
    result = BenchResult(
        model=model,
        provider="cpu",
        batch=batch,
        threads=1,
        stats=LatencyStats.from_samples(samples, batch),
        samples_ms=tuple(samples),
        session_create_ms=1.0,
        first_run_ms=1.0,
        warmup_iterations=5,
        process_peak_rss_mb=10.0,
    )
    save_results(path, [result], env)
    return path


def noisy(center, n=60, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    return center * (1 + spread * rng.standard_normal(n)) + rng.exponential(center * 0.02, n)


def test_mann_whitney_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = noisy(1.0, seed=1), noisy(1.05, seed=2)
    a = np.round(a, 2)  # ties
    for alternative in ("two-sided", "greater", "less"):
        expected = scipy_stats.mannwhitneyu(a, b, alternative=alternative, method="asymptotic")
        u, p = mann_whitney_u(a, b, alternative=alternative)
        assert u == pytest.approx(expected.statistic)
        assert p == pytest.approx(expected.pvalue, rel=1e-6)


def test_known_shift_is_flagged_and_identical_is_not(tmp_path):
    base = bench_file(tmp_path / "b.json", noisy(1.0, seed=1))
    same = bench_file(tmp_path / "s.json", noisy(1.0, seed=2))
    slow = bench_file(tmp_path / "slow.json", noisy(1.25, seed=3))
    fast = bench_file(tmp_path / "fast.json", noisy(0.7, seed=4))
    assert gate(base, same).exit_code == 0
    verdict = gate(base, slow)
    assert verdict.exit_code == 1
    latency = next(e for e in verdict.entries if e.metric.startswith("latency"))
    assert latency.regression and latency.ratio == pytest.approx(1.25, rel=0.05)
    assert latency.ci_low > 1.1 and latency.p_value < 1e-6
    improved = gate(base, fast)
    assert improved.exit_code == 0 and any(e.verdict == "improvement" for e in improved.entries)


def test_threshold_without_significance_does_not_flag(tmp_path):
    rng = np.random.default_rng(0)
    base = bench_file(tmp_path / "b.json", rng.uniform(0.5, 1.5, 6))
    cur = bench_file(
        tmp_path / "c.json", rng.uniform(0.55, 1.65, 6)
    )  # median may move >10%, but 6 noisy samples
    verdict = gate(base, cur)
    latency = next(e for e in verdict.entries if e.metric.startswith("latency"))
    assert latency.p_value > 0.01 and not latency.regression


def test_significance_without_threshold_does_not_flag(tmp_path):
    base = bench_file(tmp_path / "b.json", noisy(1.0, n=400, seed=1, spread=0.01))
    cur = bench_file(tmp_path / "c.json", noisy(1.04, n=400, seed=2, spread=0.01))
    latency = next(e for e in gate(base, cur).entries if e.metric.startswith("latency"))
    assert latency.p_value < 1e-6 and latency.verdict == "unchanged"


@pytest.mark.parametrize(
    "case", ["missing", "corrupt", "schema", "nomatch", "fewsamples", "strictenv"]
)
def test_invalid_inputs_exit_2(cli, tmp_path, case):
    base = bench_file(tmp_path / "b.json", noisy(1.0))
    cur = tmp_path / "c.json"
    args = []
    if case == "missing":
        cur = tmp_path / "nope.json"
    elif case == "corrupt":
        cur.write_text("{not json")
    elif case == "schema":
        cur.write_text(json.dumps({"schema": "other/9", "results": []}))
    elif case == "nomatch":
        bench_file(cur, noisy(1.0), model="other.onnx")
    elif case == "fewsamples":
        bench_file(cur, [1.0, 1.1, 1.2])
    elif case == "strictenv":
        bench_file(cur, noisy(1.0), env={**ENV, "cpu": "Other CPU"})
        args = ["--strict-env"]
    code, _, err = cli("gate", "--baseline", base, "--current", cur, *args)
    assert code == 2, err
    assert (
        len([l for l in err.splitlines() if l.startswith("error:")]) == 1 and "Traceback" not in err
    )


def test_env_difference_warns(cli, tmp_path):
    base = bench_file(tmp_path / "b.json", noisy(1.0))
    cur = bench_file(tmp_path / "c.json", noisy(1.0, seed=5), env={**ENV, "onnxruntime": "2.0"})
    code, _, err = cli("gate", "--baseline", base, "--current", cur)
    assert code == 0 and "environment differs: onnxruntime" in err


def test_junit_markdown_and_json(cli, tmp_path, monkeypatch):
    base = bench_file(tmp_path / "b.json", noisy(1.0))
    cur = bench_file(tmp_path / "c.json", noisy(1.3, seed=9))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = cli("gate", "--baseline", base, "--current", cur, "--junit", "g.xml", "--json")
    assert code == 1
    assert json.loads(out)["exit_code"] == 1
    suite = ET.parse(tmp_path / "g.xml").getroot()
    assert (
        suite.tag == "testsuite"
        and int(suite.get("tests")) == 2
        and int(suite.get("failures")) == 2
    )
    assert all(case.find("failure") is not None for case in suite.iter("testcase"))
    assert "onnxdeploy gate **failed**" in summary.read_text()


def test_update_baseline_is_atomic(tmp_path, monkeypatch):
    base = bench_file(tmp_path / "b.json", noisy(1.0))
    cur = bench_file(tmp_path / "c.json", noisy(2.0, seed=3))
    original = base.read_bytes()
    import shutil

    def interrupted(src, dst):
        Path(dst).write_bytes(Path(src).read_bytes()[:20])
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(shutil, "copyfile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        update_baseline(base, cur)
    assert base.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    update_baseline(base, cur)
    assert base.read_bytes() == cur.read_bytes()


def test_accuracy_and_size_from_run_reports(tmp_path):
    def report(folder, acc, size):
        folder.mkdir()
        (folder / "report.json").write_text(
            json.dumps(
                {
                    "schema": "onnxdeploy.run/1",
                    "environment": ENV,
                    "models": {"int8": {"file": "m.onnx", "bytes": size}},
                    "stages": {"evaluate": {"accuracy": {"int8": acc}}},
                }
            )
        )
        return folder

    base = report(tmp_path / "a", 99.0, 1000)
    verdict = gate(base, report(tmp_path / "b", 98.0, 1200), Thresholds())
    assert {e.metric for e in verdict.entries if e.regression} == {"accuracy %", "size bytes"}
    assert gate(base, report(tmp_path / "c", 98.8, 1020)).exit_code == 0


def test_ci_example_calls_existing_commands():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(
        (Path(__file__).parent.parent / "examples" / "github-actions.yml").read_text()
    )
    runs = [
        step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
    ]
    called = {
        m.group(1) for run in runs for m in re.finditer(r"onnxdeploy (?:-\S+ )*([a-z-]+)", run)
    }
    assert called >= {"export", "prune-channels", "quantize", "bench", "gate", "report"}
    assert called <= set(COMMANDS)
    from onnxdeploy.cli import main

    for run in runs:  # every option the example uses exists on its command
        for m in re.finditer(r"onnxdeploy ([a-z-]+)([^&|>]*)", run):
            command = main.get_command(None, m.group(1))
            known = {opt for p in command.params for opt in getattr(p, "opts", [])}
            for option in re.findall(r"(--[a-z0-9-]+|-o)\b", m.group(2)):
                assert option in known, (m.group(1), option)


def test_two_models_from_one_interleaved_bench_file(cli, tmp_path):
    from onnxdeploy.runtime_bench import BenchResult  # noqa: F401

    slow, fast = noisy(1.3, seed=1), noisy(1.0, seed=2)
    results = []
    for model, samples in (("main.onnx", fast), ("pr.onnx", slow)):
        samples = [float(s) for s in samples]
        results.append(
            BenchResult(
                model=model,
                provider="cpu",
                batch=1,
                threads=1,
                stats=LatencyStats.from_samples(samples, 1),
                samples_ms=tuple(samples),
                session_create_ms=1.0,
                first_run_ms=1.0,
                warmup_iterations=5,
                process_peak_rss_mb=1.0,
            )
        )
    save_results(tmp_path / "both.json", results, ENV)
    code, out, _ = cli(
        "gate",
        "--baseline",
        "both.json",
        "--current",
        "both.json",
        "--baseline-model",
        "main.onnx",
        "--current-model",
        "pr.onnx",
    )
    assert code == 1 and "REGRESSION" in out
    code, _, err = cli(
        "gate",
        "--baseline",
        "both.json",
        "--current",
        "both.json",
        "--baseline-model",
        "nope.onnx",
        "--current-model",
        "pr.onnx",
    )
    assert code == 2 and "no results for model 'nope.onnx'" in err
