"""The HTML report (torch-free): which inputs it reads, what each section shows, and that the page
is one self-contained, escaped file. The page in a real browser: tests/test_report_browser.py."""

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.html_report import kind_of, load, render
from onnxdeploy.html_report.sections import SECTIONS
from onnxdeploy.html_report.svg import Axis, Box, box_plot
from onnxdeploy.runtime_bench.result import BenchResult, save_results
from onnxdeploy.runtime_bench.stats import LatencyStats

ENV = {
    "cpu": "Test CPU",
    "cores": 2,
    "machine": "x86_64",
    "isa": ["avx2"],
    "onnxruntime": "1.x",
    "providers": ["CPUExecutionProvider"],
    "git_commit": "abc123",
}


def _result(model: str, samples, batch: int = 1) -> BenchResult:
    return BenchResult(
        model,
        "cpu",
        batch,
        1,
        LatencyStats.from_samples(samples, batch),
        tuple(samples),
        1.0,
        1.0,
        5,
        None,
        macs_per_sample=1000,
    )


def _bench(tmp_path, spread: float = 1.0) -> str:
    rng = np.random.default_rng(0)
    dense = list(2.0 + rng.random(50) * 0.1 * spread)
    int8 = list(1.0 + rng.random(50) * 0.05 * spread)
    path = tmp_path / "bench.json"
    save_results(
        path, [_result("/tmp/x/dense.onnx", dense), _result("/tmp/x/int8.onnx", int8)], ENV
    )
    return str(path)


class Structure(HTMLParser):
    """Section ids, tags and the text of every table cell of a page."""

    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.cells, self._cell = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "td":
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._cell)
            self._cell = None


def _parse(html: str) -> Structure:
    parser = Structure()
    parser.feed(html)
    return parser


def test_bench_json_becomes_cards_distributions_and_speedups(tmp_path):
    content = load([_bench(tmp_path)])
    assert [c.label for c in content.cards] == ["dense", "int8"]
    (speedup,) = content.cards[1].speedups
    assert (
        speedup.vs == "dense"
        and 1.8 < speedup.speedup < 2.2
        and speedup.ci_low <= speedup.speedup <= speedup.ci_high
    )
    html = render(content)
    page = _parse(html)
    for section, _ in SECTIONS:
        assert section in page.ids
    assert html.count("box = quartiles") == 1  # one chart: one (provider, batch, threads)
    assert "vs dense @ b1" in html and "abc123" in html and "Test CPU" in html


def test_latency_axis_turns_log_only_when_samples_span_decades():
    assert not Axis(1.0, 3.0, 0, 100).log
    assert Axis(0.05, 20.0, 0, 100).log
    wide = box_plot([Box("a", (0.05, 0.06, 0.07)), Box("b", (10.0, 11.0, 30.0))])
    narrow = box_plot([Box("a", (1.0, 1.1)), Box("b", (1.5, 1.6))])
    assert "log scale" in wide and "log scale" not in narrow
    # ticks inside the axis and in order
    axis = Axis(0.05, 20.0, 0, 100)
    ticks = axis.ticks()
    assert ticks == sorted(ticks) and all(axis.low <= t <= axis.high for t in ticks)


def test_page_is_self_contained_and_escaped(tmp_path):
    path = tmp_path / "bench.json"
    save_results(path, [_result("<script>alert(1)</script>.onnx", [1.0, 1.1, 1.2, 1.3, 1.4])], ENV)
    html = render(load([str(path)]))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    tags = _parse(html).tags
    assert not [t for t, a in tags if t in ("link", "img", "iframe")]
    assert not [a for t, a in tags if t == "script" and "src" in a]
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace names, never fetches


def test_gate_entries_regressions_first_and_marked(tmp_path):
    entry = {"ci_low": None, "ci_high": None, "p_value": None}
    verdict = {
        "passed": False,
        "exit_code": 1,
        "thresholds": {"latency": 0.1},
        "warnings": ["cpu differs"],
        "entries": [
            {
                **entry,
                "name": "a",
                "metric": "size bytes",
                "baseline": 1,
                "current": 1,
                "ratio": 1.0,
                "verdict": "unchanged",
            },
            {
                **entry,
                "name": "b",
                "metric": "latency p50 ms",
                "baseline": 1.0,
                "current": 1.3,
                "ratio": 1.3,
                "ci_low": 1.25,
                "ci_high": 1.35,
                "p_value": 1e-6,
                "verdict": "regression",
            },
        ],
    }
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(verdict))
    assert kind_of(verdict) == "gate"
    html = render(load([str(path)]))
    gate = html[html.index('id="gate"') : html.index('id="compare"')]
    assert gate.index(">b<") < gate.index(">a<")  # the regression comes first
    assert 'class="regression"' in gate and "failed" in gate and "cpu differs" in gate


def test_quantize_candidates_scatter_and_reasons(tmp_path):
    def attempt(name, passed, drop, speedup, **extra):
        return {
            "config": {"name": name, "description": f"{name} settings"},
            "score": 90.0 - drop,
            "drop": drop,
            "snr_db": 30.0,
            "cosine": 0.99,
            "passed": passed,
            "error": None,
            "speedup": speedup,
            **extra,
        }

    data = {
        "chosen": "fast",
        "reason": "fastest within 1 point",
        "metric": "accuracy",
        "fp32_score": 90.0,
        "target_batch": 1,
        "target_threads": 2,
        "attempts": [
            attempt("fast", True, 0.2, 2.0),
            attempt("slow", True, 0.1, 1.5),
            attempt("bad", False, 3.0, 2.2, rejected="drop 3.00 points > max 1"),
            {
                "config": {"name": "broken", "description": ""},
                "passed": False,
                "error": "Fail: no kernel",
                "score": None,
                "drop": None,
            },
        ],
    }
    path = tmp_path / "q.json"
    path.write_text(json.dumps(data))
    (view,) = load([str(path)]).quantize
    why = {a.config: a.why for a in view.attempts}
    assert why["fast"] == "chosen"
    assert "slower than fast" in why["slow"]
    assert why["bad"] == "drop 3.00 points > max 1"
    assert "no kernel" in why["broken"]
    html = render(load([str(path)]))
    section = html[html.index('id="quantize"') : html.index('id="pruning"')]
    assert section.count("<polygon") == 2  # the chosen star, and the legend's
    assert 'class="chosen"' in section


def test_prune_layers_before_after(tmp_path):
    data = {
        "layers": [{"layer": "conv1", "op": "Conv", "before": 32, "after": 16}],
        "passes": {},
        "comparison": {"max_abs": 1e-7},
        "params": {"before": 100, "after": 50},
        "macs": {"before": 10, "after": 4},
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    page = _parse(render(load([str(path)])))
    assert ["conv1", "Conv", "32", "16", "0.5"] == page.cells[:5]


@pytest.mark.parametrize(
    "setup, fragment",
    [
        (lambda p: p.write_text('{"hello": 1}'), "not a result onnxdeploy reports on"),
        (lambda p: p.write_text("{"), "not valid JSON"),
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "must be a run folder"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(cli, tmp_path, setup, fragment):
    setup(tmp_path / "in.json")
    code, out, err = cli("report", "in.json", "-o", "r.html")
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_cli_writes_page_and_never_overwrites_an_input(cli, tmp_path):
    bench = _bench(tmp_path)
    code, out, err = cli("report", bench, "-o", "page.html", "--json")
    assert code == 0, err
    assert json.loads(out)["sections"]["latency"] == 2
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
    before = (tmp_path / "bench.json").read_bytes()
    code, _, err = cli("report", bench, "-o", bench)
    assert code == 2 and "overwrite an input" in err
    assert (tmp_path / "bench.json").read_bytes() == before
    with pytest.raises(UserError):
        load([])
