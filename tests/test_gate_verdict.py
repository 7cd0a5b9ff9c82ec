"""The gate's verdict rules, on results built in memory: each rule pinned by the case that shows it."""

import math

import numpy as np
import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.gate.inputs import GateInput
from onnxdeploy.gate.verdict import MIN_SAMPLES, Thresholds, judge
from onnxdeploy.runtime_bench import BenchResult, LatencyStats


def _bench(samples, *, batch=1, target=None):
    samples = tuple(float(s) for s in samples)
    return BenchResult(
        model="m.onnx", provider="cpu", batch=batch, threads=1,
        stats=LatencyStats.from_samples(list(samples), batch), samples_ms=samples,
        session_create_ms=1.0, first_run_ms=1.0, warmup_iterations=5, process_peak_rss_mb=10.0,
        target=target,
    )


def _input(samples=None, *, source="x.json", target=None, accuracy=None, size=None, env=None):
    found = GateInput(source, environment=env or {})
    if samples is not None:
        found.latency[("m.onnx", "cpu", 1, 1, target)] = _bench(samples, target=target)
    found.accuracy.update(accuracy or {})
    found.size.update(size or {})
    return found


def _samples(center, seed, n=60):
    rng = np.random.default_rng(seed)
    return center * (1 + 0.02 * rng.standard_normal(n))


def _entry(verdict, metric):
    return next(e for e in verdict.entries if e.metric.startswith(metric))


@pytest.mark.parametrize(
    "kwargs",
    [{"latency": -0.1}, {"latency": float("nan")}, {"size": True}, {"throughput": "0.1"},
     {"accuracy_drop": math.inf}, {"alpha": 0}, {"alpha": 1}, {"alpha": True},
     {"percentiles": ("p50", "p75")}],
)
def test_thresholds_refuse_what_cannot_be_a_threshold(kwargs):
    with pytest.raises(UserError):
        Thresholds(**kwargs)


def test_a_slowdown_needs_both_the_threshold_and_significance():
    base = _input(_samples(1.0, 1))
    slow = judge(base, _input(_samples(1.2, 2)))
    assert not slow.passed and slow.exit_code == 1 and not bool(slow)
    latency = _entry(slow, "latency p50")
    assert latency.regression and latency.p_value < 0.01
    assert latency.ci_low <= latency.ratio <= latency.ci_high
    # 5% slower and significant: under the 10% threshold
    assert _entry(judge(base, _input(_samples(1.05, 3))), "latency").verdict == "unchanged"
    # 20% slower on 5 samples spread wide: over the threshold, not significant at alpha 0.01
    wide = _input([0.5, 2.0, 1.2, 0.6, 1.9])
    assert _entry(judge(_input([0.5, 1.9, 1.0, 0.6, 1.8]), wide), "latency").verdict == "unchanged"


def test_faster_counts_as_the_mirror_of_slower():
    """10% slower is a regression; the improvement threshold is its mirror, 1 - 1/1.1 (9.1%)."""
    base = _input(_samples(1.0, 1))
    assert _entry(judge(base, _input(_samples(0.905, 2))), "latency").verdict == "improvement"
    assert _entry(judge(base, _input(_samples(0.93, 2))), "latency").verdict == "unchanged"


def test_throughput_follows_the_raw_samples_median():
    verdict = judge(_input(_samples(1.0, 1)), _input(_samples(1.25, 2)))
    throughput = _entry(verdict, "throughput")
    assert throughput.regression
    assert throughput.ratio == pytest.approx(1 / _entry(verdict, "latency p50").ratio, rel=1e-9)
    assert throughput.ci_low is None and throughput.ci_high is None


def test_each_percentile_asked_for_is_judged_and_only_p50_carries_a_ci():
    verdict = judge(_input(_samples(1.0, 1)), _input(_samples(1.0, 2)),
                    Thresholds(percentiles=("p50", "p99")))
    metrics = [e.metric for e in verdict.entries]
    assert metrics == ["latency p50 ms", "latency p99 ms", "throughput samples/s"]
    assert _entry(verdict, "latency p99").ci_low is None
    assert _entry(verdict, "latency p50").ci_low is not None


def test_too_few_samples_is_the_users_to_fix():
    with pytest.raises(UserError, match=f"need >= {MIN_SAMPLES}"):
        judge(_input([1.0] * (MIN_SAMPLES - 1)), _input(_samples(1.0, 1)))


@pytest.mark.parametrize(
    "base, current, verdict",
    [(90.0, 89.4, "regression"), (90.0, 89.6, "unchanged"), (90.0, 90.6, "improvement")],
)
def test_accuracy_is_judged_in_points(base, current, verdict):
    found = judge(_input(accuracy={"m": base}), _input(accuracy={"m": current}))
    assert _entry(found, "accuracy").verdict == verdict


def test_a_zero_baseline_accuracy_has_ratio_one():
    found = judge(_input(accuracy={"m": 0.0}), _input(accuracy={"m": 0.0}))
    assert _entry(found, "accuracy").ratio == 1.0


@pytest.mark.parametrize(
    "current, verdict", [(1060, "regression"), (1040, "unchanged"), (940, "improvement")]
)
def test_size_is_judged_as_a_fraction(current, verdict):
    found = judge(_input(size={"m": 1000}), _input(size={"m": current}))
    assert _entry(found, "size").verdict == verdict


def test_environments_that_differ_warn_and_strict_refuses():
    base = _input(_samples(1.0, 1), env={"cpu": "A", "cores": 2})
    cur = _input(_samples(1.0, 2), env={"cpu": "B", "cores": 2, "extra": 1})
    assert judge(base, cur).warnings == ("environment differs: cpu baseline 'A', current 'B'",)
    with pytest.raises(UserError, match="strict_env"):
        judge(base, cur, strict_env=True)


def test_entries_on_one_side_only_warn_and_no_match_at_all_refuses():
    base = _input(_samples(1.0, 1))
    base.latency[("other.onnx", "cpu", 1, 1, None)] = _bench(_samples(1.0, 3))
    found = judge(base, _input(_samples(1.0, 2)))
    assert any("1 latency entry present on one side only" in w for w in found.warnings)
    with pytest.raises(UserError, match="no entries match"):
        judge(_input(size={"a": 1}), _input(size={"b": 1}))


def test_a_cluster_target_is_part_of_the_entry_name():
    found = judge(_input(_samples(1.0, 1), target="node-a"),
                  _input(_samples(1.0, 2), target="node-a"))
    assert found.entries[0].name.endswith("@node-a")
    assert found.to_json()["schema"] and found.to_json()["passed"] is True


def _document(tmp_path, name, data):
    import json

    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_gate_inputs_are_recognized_by_their_schema_and_old_ones_by_their_keys(tmp_path):
    from onnxdeploy.gate.inputs import load_gate_input

    decoder = {"chosen": "int4", "min_agreement": 90.0,
               "attempts": [{"candidate": {"name": "int4"}, "agreement": 97.5, "bytes": 1000}]}
    tagged = _document(tmp_path, "d.json", {"schema": "onnxdeploy.quantize-decoder/1", **decoder})
    untagged = _document(tmp_path, "old.json", decoder)
    today = {
        "schema": "onnxdeploy.quantize/1",
        "chosen": "int4",
        "decoder": {"min_agreement": 90.0},
        "attempts": [{"config": {"name": "int4"}, "score": 97.5, "bytes": 1000}],
    }
    current = _document(tmp_path, "q.json", today)
    for path in (tagged, untagged, current):  # written before one result type, and since
        found = load_gate_input(path)
        assert found.accuracy == {"decoder": 97.5} and found.size == {"decoder": 1000}
    pruned = {"schema": "onnxdeploy.passes/1", "file_bytes": {"before": 10, "after": 4}}
    assert load_gate_input(_document(tmp_path, "p.json", pruned)).size == {"pruned": 4}
    # a document of another kind is not read as a quantize result for the keys it happens to hold
    export = {"schema": "onnxdeploy.export/1", "attempts": [], "chosen": "x", "bytes_after": 1}
    with pytest.raises(UserError, match="not a bench result"):
        load_gate_input(_document(tmp_path, "e.json", export))


def test_the_report_forms_carry_every_entry_and_mark_regressions(tmp_path, monkeypatch):
    import xml.etree.ElementTree as ET

    from onnxdeploy.gate.report import append_step_summary, junit_xml, markdown, table

    verdict = judge(_input(_samples(1.0, 1), size={"m": 1000}),
                    _input(_samples(1.3, 2), size={"m": 1000}))
    regressions = [e for e in verdict.entries if e.regression]
    assert len(regressions) == 2  # latency p50 and throughput; size unchanged
    suite = ET.fromstring(junit_xml(verdict))
    assert suite.get("tests") == str(len(verdict.entries)) and suite.get("failures") == "2"
    failed = [c.get("name") for c in suite if c.find("failure") is not None]
    assert failed == [f"{e.name} {e.metric}" for e in regressions]
    text = table(verdict)
    assert text.splitlines()[-1].startswith("FAIL: 2 regression(s) in 3 entries")
    assert "REGRESSION" in text and "unchanged" in text
    assert markdown(verdict).startswith("### onnxdeploy gate **failed**")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_step_summary(verdict) is False
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert append_step_summary(verdict) and append_step_summary(verdict)  # appends, twice
    assert summary.read_text().count("### onnxdeploy gate") == 2
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "summary.md"))
    with pytest.raises(UserError, match="GITHUB_STEP_SUMMARY"):
        append_step_summary(verdict)


def test_cpu_flags_read_x86_flags_and_arm_features():
    from onnxdeploy.runtime_bench.environment import ISA_FLAGS, cpu_flags

    x86 = "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 avx512f avx512_vnni amx_int8\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm\n"
    assert {"avx2", "avx512_vnni", "amx_int8"} <= cpu_flags(x86)
    assert ISA_FLAGS["neon"] in cpu_flags(arm)
    assert cpu_flags("processor\t: 0\n") == set()
