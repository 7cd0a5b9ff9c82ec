"""Every JSON document we print or write names what it is (issue 32, item 4), and the report
recognizes documents by that name."""

import json

import pytest

from onnxdeploy import schemas
from onnxdeploy.html_report.sources import kind_of


def test_tagged_and_kind():
    data = schemas.tagged("quantize", {"chosen": "fp32"})
    assert list(data)[0] == "schema" and data["schema"] == "onnxdeploy.quantize/1"
    assert schemas.kind(data) == "quantize" and schemas.kind({"chosen": 1}) is None
    assert schemas.tagged("x", {"schema": "onnxdeploy.bench/2"})["schema"] == "onnxdeploy.bench/2"


@pytest.mark.parametrize(
    "args, kind",
    [
        (("inspect", "m.onnx", "--json"), "inspect"),
        (("prune-channels", "m.onnx", "-o", "p.onnx", "--json"), "passes"),
        (("quantize", "m.onnx", "-o", "q.onnx", "--calib", "random", "--calib-size", "8",
          "--iterations", "3", "--max-drop", "100", "--json"), "quantize"),
        (("bench", "m.onnx", "--iterations", "3", "--json"), "bench"),
    ],
)
def test_every_command_output_carries_its_schema(cli, small_model, args, kind):
    code, out, err = cli(*args)
    assert code in (0, 1), err
    data = json.loads(out)
    assert schemas.kind(data) == kind
    if kind in ("quantize", "bench"):
        assert kind_of(data) == kind  # the report reads it by its schema


def test_the_report_reads_a_decoders_quantize_result_by_its_schema():
    assert kind_of(schemas.tagged("quantize-decoder", {})) == "quantize"
    assert kind_of(schemas.tagged("passes", {})) == "prune-channels"
    assert kind_of(schemas.tagged("export", {"chosen": 1, "attempts": [], "metric": "x"})) is None
