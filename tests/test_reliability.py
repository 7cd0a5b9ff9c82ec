"""Reliability: broken inputs, faults and concurrency never give an internal error (exit 3), never
lose or half-write an output, and never pass (exit 0) on invalid input."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxdeploy.errors import OnnxDeployError, UserError
from onnxdeploy.gate import Thresholds, gate
from tests.onnx_graphs import GraphBuilder
from tests.test_gate import bench_file, noisy


def _small_model(path, zero=(1,)):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    onnx.save(g.model(g.conv(g.op("Relu", g.conv("x", 3, 8, zero=zero)), 8, 4)), str(path))
    return path


def _broken_models(folder):
    """name -> path of files that are not valid models, each broken in another way."""
    good = _small_model(folder / "good.onnx")
    models = {}
    (folder / "garbage.onnx").write_bytes(os.urandom(256))
    models["garbage"] = folder / "garbage.onnx"
    (folder / "empty.onnx").write_bytes(b"")
    models["empty"] = folder / "empty.onnx"
    (folder / "truncated.onnx").write_bytes(good.read_bytes()[:200])
    models["truncated"] = folder / "truncated.onnx"
    dangling = onnx.load(str(good))
    dangling.graph.node[0].input[0] = "nowhere"
    onnx.save(dangling, str(folder / "dangling.onnx"))
    models["dangling"] = folder / "dangling.onnx"
    onnx.save(
        onnx.load(str(good)),
        str(folder / "ext.onnx"),
        save_as_external_data=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    outside = onnx.load(str(folder / "ext.onnx"), load_external_data=False)
    for tensor in outside.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.data"
    onnx.save(outside, str(folder / "outside.onnx"))
    models["outside"] = folder / "outside.onnx"
    (folder / "ext.onnx.data").unlink()
    models["missing-data"] = folder / "ext.onnx"
    (folder / "dir.onnx").mkdir()
    models["folder"] = folder / "dir.onnx"
    return models


COMMANDS = [
    ["inspect", "{m}"],
    ["bench", "{m}", "--iterations", "3"],
    ["prune-channels", "{m}", "-o", "out.onnx"],
    ["optimize", "{m}", "-o", "out.onnx"],
    ["quantize", "{m}", "-o", "out.onnx", "--calib", "random"],
]


def test_a_corpus_of_broken_models_is_exit_2_for_every_command(cli, tmp_path):
    for name, path in _broken_models(tmp_path).items():
        for command in COMMANDS:
            code, _, err = cli(*[a.format(m=path) for a in command])
            # inspect describes what it can read and fails its check (exit 1); the rest refuse it (exit 2)
            expected = {1, 2} if command[0] == "inspect" and name == "dangling" else {2}
            assert code in expected, f"{name} {command[0]}: exit {code}: {err}"
            errors = [line for line in err.splitlines() if line.lower().startswith("error: ")]
            assert len(errors) == 1 and "Traceback" not in err, f"{name} {command[0]}: {err}"
            assert not (tmp_path / "out.onnx").exists()


GATE_DOCS = [
    {"schema": "onnxdeploy.bench/2", "results": {"a": 1}},
    {"schema": "onnxdeploy.bench/2", "results": [{"model": "m", "samples_ms": ["1", "2"]}]},
    {"schema": "onnxdeploy.run/1", "models": {"fp32": {"bytes": 3}}},
    {"schema": "onnxdeploy.run/1", "models": {"fp32": {"file": "m.onnx", "bytes": "big"}}},
    {"schema": "onnxdeploy.run/1", "models": {}, "stages": {"bench": {"file": "../../etc/passwd"}}},
    {"attempts": [{"config": {}}], "chosen": "x"},
    [1, 2, 3],
]


@pytest.mark.parametrize("doc", GATE_DOCS, ids=range(len(GATE_DOCS)))
def test_malformed_gate_documents_are_exit_2(cli, tmp_path, doc):
    bench_file(tmp_path / "base.json", noisy(10.0))
    (tmp_path / "cur.json").write_text(json.dumps(doc))
    code, _, err = cli("gate", "--baseline", "base.json", "--current", "cur.json")
    assert code == 2 and err.startswith("error: cur.json") and "Traceback" not in err, err


def test_deeply_nested_json_is_exit_2(cli, tmp_path):
    bench_file(tmp_path / "base.json", noisy(10.0))
    (tmp_path / "cur.json").write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = cli("gate", "--baseline", "base.json", "--current", "cur.json")
    assert code == 2 and "Traceback" not in err, err


SAMPLE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)
RESULT = st.fixed_dictionaries(
    {
        "model": st.one_of(st.just("m.onnx"), SAMPLE),
        "provider": st.just("cpu"),
        "batch": st.one_of(st.just(1), SAMPLE),
        "threads": st.just(1),
        "samples_ms": st.one_of(st.lists(SAMPLE, max_size=12), SAMPLE),
    },
    optional={"stats": st.dictionaries(st.text(max_size=4), SAMPLE, max_size=3)},
)
DOC = st.fixed_dictionaries(
    {
        "schema": st.sampled_from(["onnxdeploy.bench/1", "onnxdeploy.bench/2", "x"]),
        "results": st.one_of(st.lists(RESULT, max_size=3), SAMPLE),
        "environment": st.one_of(st.just({}), SAMPLE),
    }
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=DOC)
def test_fuzzed_gate_documents_never_break_the_gate(tmp_path, doc):
    base = bench_file(tmp_path / "base.json", noisy(10.0))
    (tmp_path / "fuzz.json").write_text(json.dumps(doc))
    try:
        verdict = gate(base, tmp_path / "fuzz.json", Thresholds())
    except OnnxDeployError as exc:
        assert exc.exit_code == 2
    else:  # only a document whose every sample is a finite positive number can be judged
        assert all(e.current > 0 for e in verdict.entries)


VALUE = st.one_of(
    st.integers(-10, 10),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.booleans(),
    st.lists(st.integers(-2, 40), max_size=3),
)
STAGE = st.fixed_dictionaries(
    {"name": st.sampled_from(["train", "export", "bench", "quantize", "evaluate", "x"])},
    optional={k: VALUE for k in ("epochs", "batch", "iterations", "lr", "max_drop")},
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    top=st.dictionaries(st.sampled_from(["model", "seed", "data", "colour"]), VALUE, max_size=3),
    stages=st.lists(STAGE, max_size=4),
)
def test_fuzzed_recipes_are_accepted_or_refused_never_crash(tmp_path, top, stages):
    from onnxdeploy.pipeline import load_recipe

    def toml_value(v):
        return json.dumps(v) if not isinstance(v, float) or v == v else "nan"

    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for stage in stages:
        lines += ["[[stage]]"] + [f"{k} = {toml_value(v)}" for k, v in stage.items()]
    path = tmp_path / "r.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        recipe = load_recipe(path)
    except OnnxDeployError as exc:
        assert exc.exit_code == 2
    else:
        assert recipe.stages and all(isinstance(o, dict) for _, o in recipe.stages)


def _cli(*args, preexec=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "onnxdeploy.cli", *map(str, args)],
        capture_output=True,
        text=True,
        preexec_fn=preexec,
        timeout=timeout,
    )


def test_a_full_disk_is_exit_2_and_keeps_the_old_output(tmp_path):
    source = _small_model(tmp_path / "m.onnx", zero=())
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old output")

    def limit():  # files may grow to 1 kB only: the model does not fit
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    result = _cli("optimize", source, "-o", out, preexec=limit)
    assert result.returncode == 2, result.stderr
    assert "File too large" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"old output"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_output_that_cannot_be_replaced_is_exit_2(cli, tmp_path):
    _small_model(tmp_path / "m.onnx")
    (tmp_path / "out.onnx").mkdir()
    code, _, err = cli("prune-channels", "m.onnx", "-o", "out.onnx")
    assert code == 2 and "out.onnx" in err and "Traceback" not in err, err


def test_outputs_never_overwrite_inputs(cli, tmp_path):
    _small_model(tmp_path / "m.onnx")
    before = (tmp_path / "m.onnx").read_bytes()
    bench_file(tmp_path / "b.json", noisy(10.0))
    for args in (
        ["bench", "m.onnx", "-o", "m.onnx"],
        ["bench", "m.onnx", "--md", "m.onnx"],
        ["prune-channels", "m.onnx", "-o", "./m.onnx"],
        ["quantize", "m.onnx", "-o", "m.onnx", "--calib", "random"],
        ["gate", "--baseline", "b.json", "--current", "b.json", "--junit", "b.json"],
    ):
        code, _, err = cli(*args)
        assert code == 2 and "would overwrite an input" in err, (args, err)
    assert (tmp_path / "m.onnx").read_bytes() == before


def test_sigkill_during_a_write_never_leaves_a_half_file(tmp_path):
    source = _small_model(tmp_path / "m.onnx", zero=(1, 2, 3))
    out = tmp_path / "out.onnx"
    assert _cli("prune-channels", source, "-o", out).returncode == 0
    good = out.read_bytes()
    for delay in (0.3, 0.8, 1.2, 1.6, 2.0, 2.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "onnxdeploy.cli", "prune-channels", str(source), "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (
            out.read_bytes() == good
        )  # the old output, or the same complete new one: never a half file
        onnx.checker.check_model(str(out))


def test_two_concurrent_runs_onto_one_output_both_finish_and_leave_a_valid_model(tmp_path):
    source = _small_model(tmp_path / "m.onnx", zero=(1, 2))
    out = tmp_path / "out.onnx"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "onnxdeploy.cli", "prune-channels", str(source), "-o", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0], [p.stderr.read() for p in procs]
    onnx.checker.check_model(str(out))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("nan", "finite"),
        ("inf", "finite"),
        ("1.5", "ambiguous"),
        ("1", "ambiguous"),
        ("-5%", "finite number >= 0"),
        ("abc", "expected"),
    ],
)
def test_thresholds_are_written_one_way(cli, tmp_path, value, fragment):
    bench_file(tmp_path / "b.json", noisy(10.0))
    code, _, err = cli(
        "gate", "--baseline", "b.json", "--current", "b.json", "--latency-threshold", value
    )
    assert code == 2 and fragment in err, err


def test_nan_samples_cannot_fool_the_gate(cli, tmp_path):
    bench_file(tmp_path / "base.json", noisy(10.0))
    slow = list(noisy(30.0))
    for i in range(0, len(slow), 3):
        slow[i] = float("nan")
    doc = json.loads(bench_file(tmp_path / "cur.json", noisy(30.0)).read_text())
    doc["results"][0]["samples_ms"] = slow
    (tmp_path / "cur.json").write_text(json.dumps(doc).replace("NaN", "NaN"))
    code, _, err = cli("gate", "--baseline", "base.json", "--current", "cur.json")
    assert code == 2 and "NaN, Inf, zero or negative" in err, err


def test_update_baseline_only_on_pass(cli, tmp_path):
    bench_file(tmp_path / "base.json", noisy(10.0))
    bench_file(tmp_path / "cur.json", noisy(30.0, seed=1))
    before = (tmp_path / "base.json").read_text()
    code, _, err = cli(
        "-q", "gate", "--baseline", "base.json", "--current", "cur.json", "--update-baseline"
    )
    assert code == 1 and (tmp_path / "base.json").read_text() == before
    assert "FAIL" in err and "NOT updated" in err  # a failing verdict reaches stderr even with -q
    code, _, err = cli("gate", "--baseline", "base.json", "--current", "cur.json", "--force-update")
    assert code == 1 and (tmp_path / "base.json").read_text() == (tmp_path / "cur.json").read_text()
    assert "FAILED" in err and "promoted" in err


def test_outputs_take_the_umask_permissions(cli, tmp_path):
    _small_model(tmp_path / "m.onnx")
    old = os.umask(0o022)
    try:
        code, _, err = cli("prune-channels", "m.onnx", "-o", "p.onnx")
        assert code == 0, err
        bench_file(tmp_path / "b.json", noisy(10.0))
        code, _, err = cli(
            "gate", "--baseline", "b.json", "--current", "b.json", "--junit", "j.xml"
        )
    finally:
        os.umask(old)
    assert (tmp_path / "p.onnx").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "j.xml").stat().st_mode & 0o777 == 0o644


@pytest.mark.extra
def test_user_code_that_exits_is_reported_not_silent(cli, tmp_path):
    (tmp_path / "quitter.py").write_text("import sys\n\ndef build():\n    sys.exit(0)\n")
    code, _, err = cli("export", "quitter.py:build", "--input-shape", "1x4", "-o", "q.onnx")
    assert code == 2 and "sys.exit(0)" in err and not (tmp_path / "q.onnx").exists(), err


def test_bootstrap_memory_is_bounded():
    import tracemalloc

    from onnxdeploy.runtime_bench import bootstrap_ratio_ci

    a, b = np.random.default_rng(0).random(30_000) + 1, np.random.default_rng(1).random(30_000) + 1
    tracemalloc.start()
    low, high = bootstrap_ratio_ci(a, b)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert low <= np.median(a) / np.median(b) <= high
    assert peak < 100 * 1024**2


def test_thread_counts_past_the_machine_are_exit_2_before_any_work(cli, tmp_path):
    """onnxruntime starts every thread asked for: 10,000 hung the machine and ignored Ctrl-C."""
    _small_model(tmp_path / "m.onnx")
    limit = 4 * (os.cpu_count() or 1)
    for args in (
        ["bench", "m.onnx", "--threads", "10000"],
        ["bench", "m.onnx", "--threads", str(limit + 1)],
        ["quantize", "m.onnx", "-o", "q.onnx", "--calib", "random", "--target-threads", "10000"],
        ["compare", "m.onnx", "m.onnx", "--threads", "10000"],
    ):
        started = time.perf_counter()
        code, _, err = cli(*args)
        assert code == 2 and f"between 1 and {limit}" in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and time.perf_counter() - started < 5, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    code, _, err = cli("bench", "m.onnx", "--threads", str(limit), "--iterations", "3")
    assert code == 0, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_quantize_cleans_up_like_ctrl_c(tmp_path, sig):
    """SIGTERM (a CI job cancelled, a container stopped) and SIGHUP clean up as SIGINT does: our temp
    folders and onnxruntime's go, no output is written, exit 128 + the signal."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    model = _small_model(tmp_path / "m.onnx")
    proc = subprocess.Popen(
        [sys.executable, "-m", "onnxdeploy.cli", "quantize", str(model), "-o",
         str(tmp_path / "q.onnx"), "--calib", "random", "--calib-size", "256", "--iterations", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    deadline = time.time() + 60
    while not any(p.name.startswith("onnxdeploy-quant-") for p in temp.iterdir()):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(1.0)  # into the search
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "interrupted" in err and "Traceback" not in err, err
    # onnxruntime writes one fixed-name file, $TMPDIR/.ses, on its first session in any process
    assert [p.name for p in temp.iterdir() if p.name != ".ses"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "tmp"]


def test_usage_mistakes_are_one_line_exit_2(cli):
    for args in (
        ["quantize", "m.onnx", "--activation-type", "int7"],
        ["bench"],
        ["nosuch"],
        ["gate", "--bogus", "1"],
        ["bench", "m.onnx", "--threads", "two"],
    ):
        code, out, err = cli(*args)
        assert code == 2 and err.startswith("error: "), (args, err)
        assert len(err.strip().splitlines()) == 1 and "Usage:" not in err + out, (args, err)


def test_numbers_out_of_range_are_exit_2_before_any_work(cli, tmp_path):
    _small_model(tmp_path / "m.onnx")
    for args, flag in (
        (["compare", "m.onnx", "m.onnx", "--seed", "-1"], "--seed"),
        (["compare", "m.onnx", "m.onnx", "--atol", "-1"], "--atol"),
        (["compare", "m.onnx", "m.onnx", "--rtol", "-0.5"], "--rtol"),
        (["compare", "m.onnx", "m.onnx", "--fix", "-o", "f.onnx", "--max-fix-nodes", "0"], "--max-fix-nodes"),
    ):
        code, _, err = cli(*args)
        assert code == 2 and flag in err and len(err.strip().splitlines()) == 1, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_prompt_ids_split_on_commas_and_spaces_never_run_together(cli, tmp_path):
    from onnxdeploy.cli.generate_cmd import _ids
    from onnxdeploy.generate.sampling import Sampling

    assert _ids("1 2 3") == _ids("1,2,3") == _ids(" 1, 2 ,3 ") == [1, 2, 3]  # never token 123
    for bad in ("", " , ", "1;2"):
        with pytest.raises(UserError):
            _ids(bad)
    with pytest.raises(UserError):
        Sampling(seed=-1)
    _small_model(tmp_path / "m.onnx")
    for args in (["--max-new-tokens", "0"], ["--seed", "-1"]):
        code, _, err = cli("generate", "m.onnx", "--prompt-ids", "1,2", *args)
        assert code == 2 and args[0] in err and len(err.strip().splitlines()) == 1, err


def test_two_commands_publishing_one_folder_end_with_one_winner_and_a_one_line_exit_2(tmp_path):
    """package -o P twice at once: the second to finish found P full (ENOTEMPTY traceback, exit 1);
    now it is a UserError naming P, and the winner's files stay."""
    from onnxdeploy.atomic import atomic_dir

    folder = tmp_path / "pkg"
    with pytest.raises(UserError, match="already holds files"):
        with atomic_dir(folder) as stage:
            (stage / "mine.txt").write_text("loser")
            folder.mkdir()  # the other command publishes first
            (folder / "theirs.txt").write_text("winner")
    assert [p.name for p in folder.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]  # no staging folder left


def test_inputs_a_model_cannot_take_are_a_user_error_naming_it(tmp_path):
    """Scoring runs the user's model on the calibration/eval inputs: onnxruntime refusing them is
    the input's problem (exit 2), as PP-OCRv4's detector refused random 16x16 images."""
    from onnxdeploy.runtime import run_batched

    model = _small_model(tmp_path / "m.onnx")
    with pytest.raises(UserError, match="m.onnx: onnxruntime cannot run it"):
        run_batched(str(model), {"x": np.zeros((2, 5, 8, 8), np.float32)})  # 5 channels, not 3
