"""compare: planted faults are found as the first diverging node, QDQ models are matched through
their Q/DQ pairs, the repair puts the fewest nodes back to fp32, and memory stays bounded."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx_graphs import GraphBuilder
from onnxdeploy.compare import CompareRequest, Tolerance, compare_report
from onnxdeploy.compare.repair import repair
from onnxdeploy.compare.store import TensorStore


def _conv_chain(path, depth=6, seed=0):
    g = GraphBuilder(shape=(1, 3, 16, 16), seed=seed)
    x = "x"
    for i in range(depth):
        x = g.op("Relu", g.conv(x, 3 if i == 0 else 8, 8))
    onnx.save(g.model(x), path)
    return path


def _perturb(model, weight, *, add=0.0, scale=1.0):
    for t in model.graph.initializer:
        if t.name == weight:
            array = numpy_helper.to_array(t) * scale + add
            t.CopyFrom(
                numpy_helper.from_array(array.astype(numpy_helper.to_array(t).dtype), weight)
            )
            return
    raise AssertionError(weight)


def _matmul_chain(path, depth=5, width=32):
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(depth):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"mm{i}"], name=f"MatMul_{i}"))
        nodes.append(helper.make_node("Tanh", [f"mm{i}"], [f"t{i}"], name=f"Tanh_{i}"))
        x = f"t{i}"
    graph = helper.make_graph(
        nodes,
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", width])],
        initializer=inits,
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path
    )
    return path


def _qdq(src, dst, width=32):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self.batches = iter(
                [{"x": rng.standard_normal((4, width)).astype(np.float32)} for _ in range(8)]
            )

        def get_next(self):
            return next(self.batches, None)

    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=False)
    return dst


def test_planted_conv_fault_is_the_first_and_only_divergence(tmp_path):
    ref = _conv_chain(str(tmp_path / "ref.onnx"))
    model = onnx.load(ref)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    _perturb(model, convs[3].input[1], add=0.5)
    onnx.save(model, tmp_path / "bad.onnx")
    report = compare_report(
        CompareRequest(ref, str(tmp_path / "bad.onnx"), layerwise=True, slice_nodes=3)
    )
    assert not report.passed
    assert report.first_divergence.node == convs[3].name
    # fed the reference's inputs, the nodes after the fault do not inherit it
    assert [n.node for n in report.nodes if not n.diff.passed] == [convs[3].name]
    assert "would pass with atol" in report.verdict()


def test_badly_quantized_matmul_found_through_qdq_pairs(tmp_path, monkeypatch):
    ref = _matmul_chain(str(tmp_path / "ref.onnx"))
    good = _qdq(ref, str(tmp_path / "q.onnx"))
    report = compare_report(CompareRequest(ref, good, layerwise=True))
    assert report.kind == "int8" and report.passed and report.first_divergence is None
    compared = {n.tensor: n for n in report.nodes}
    # each MatMul of the QDQ graph is compared with the fp32 MatMul of the same output, the
    # tensor read through its QuantizeLinear -> DequantizeLinear pair
    assert {f"mm{i}" for i in range(5)} <= set(compared)
    assert compared["mm2"].op == "MatMul" and compared["mm2"].node == "MatMul_2"
    bad = onnx.load(good)
    weight_dq = next(
        n for n in bad.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith("w2")
    )
    _perturb(bad, weight_dq.input[1], scale=8.0)  # MatMul_2's weight scale: every weight 8x off
    onnx.save(bad, tmp_path / "qbad.onnx")
    for slice_nodes in (1, 2, 5, 64):  # where the slices cut (between a Q and its DQ too)
        report = compare_report(
            CompareRequest(
                ref, str(tmp_path / "qbad.onnx"), layerwise=True, slice_nodes=slice_nodes
            )
        )
        assert not report.passed and report.first_divergence.node == "MatMul_2"
        assert [n.node for n in report.nodes if not n.diff.passed][0] == "MatMul_2"

    fixed = repair(
        CompareRequest(ref, str(tmp_path / "qbad.onnx")),
        str(tmp_path / "fixed.onnx"),
        time_it=False,
    )
    assert fixed.passed and fixed.tensors == ("mm2",)  # the fewest: the planted node alone
    again = compare_report(CompareRequest(ref, str(tmp_path / "fixed.onnx"), layerwise=True))
    assert again.passed and again.first_divergence is None
    ops = [n.op_type for n in onnx.load(tmp_path / "fixed.onnx").graph.node]
    assert ops.count("QuantizeLinear") >= 4  # the rest stays int8

    # the repaired model is published only when the command succeeds: an interrupted timing
    # leaves no -o behind (nor our temp folder)
    import onnxdeploy.compare.repair as repair_module

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(repair_module, "_timed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        repair(CompareRequest(ref, str(tmp_path / "qbad.onnx")), str(tmp_path / "fixed2.onnx"))
    assert not (tmp_path / "fixed2.onnx").exists()


def _overflow_model(path):
    g = GraphBuilder(shape=(1, 3, 8, 8))
    x = g.op("Relu", g.conv("x", 3, 8))
    big = g.op("Mul", x, g.const(np.array(2e4, np.float32)))  # past fp16's 65504
    y = g.op("Div", big, g.const(np.array(2e4, np.float32)))
    onnx.save(g.model(g.op("Relu", g.conv(y, 8, 8))), path)
    return [n.name for n in g.nodes if n.op_type in ("Mul", "Div")]


def test_fp16_overflow_found_and_kept_in_fp32(cli, tmp_path):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    mul, div = _overflow_model(str(tmp_path / "f32.onnx"))
    onnx.save(
        convert_float_to_float16(onnx.load(tmp_path / "f32.onnx"), keep_io_types=True),
        tmp_path / "f16.onnx",
    )
    report = compare_report(
        CompareRequest(str(tmp_path / "f32.onnx"), str(tmp_path / "f16.onnx"), layerwise=True)
    )
    assert report.kind == "fp16"
    first = report.first_divergence
    assert first.node == mul and first.diff.inf > 0
    code, out, err = cli("quantize", "f32.onnx", "-o", "h.onnx", "--fp16", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["kept_fp32"] == [mul, div] and mul in result["diverged_in_plain_fp16"]
    half = onnx.load(tmp_path / "h.onnx")
    assert any(t.data_type == TensorProto.FLOAT16 for t in half.graph.initializer)
    # Mul -> Div stays fp32 end to end: no fp16 round trip left between them
    div_node = next(n for n in half.graph.node if n.name == div)
    mul_node = next(n for n in half.graph.node if n.name == mul)
    assert div_node.input[0] == mul_node.output[0]
    check = compare_report(
        CompareRequest("f32.onnx", "h.onnx", layerwise=True, tolerance=Tolerance(min_snr_db=35))
    )
    assert check.passed and not any(n.diff.inf or n.diff.nan for n in check.nodes)


def test_cli_exit_codes_and_report_section(cli, tmp_path):
    ref = _conv_chain(str(tmp_path / "ref.onnx"))
    model = onnx.load(ref)
    _perturb(model, model.graph.node[0].input[1], add=1.0)
    onnx.save(model, tmp_path / "bad.onnx")
    code, out, err = cli("compare", "ref.onnx", "ref.onnx")
    assert code == 0, err
    code, out, err = cli("compare", "ref.onnx", "bad.onnx", "--layerwise", "--json")
    assert code == 1 and "would pass with" in err
    data = json.loads(out)
    assert (
        data["schema"] == "onnxdeploy.compare/1"
        and data["first_divergence"]["node"] == model.graph.node[0].name
    )
    (tmp_path / "c.json").write_text(out)
    code, _, err = cli("report", "c.json", "-o", "r.html")
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    section = page[page.index('<section id="compare">') : page.index('<section id="environment">')]
    assert model.graph.node[0].name in section and "failed" in section
    code, _, err = cli("compare", "ref.onnx", "bad.onnx", "--fix")
    assert code == 2 and "give -o" in err
    code, _, err = cli("compare", "ref.onnx", "bad.onnx", "--fix", "-o", "ref.onnx")
    assert code == 2 and "overwrite an input" in err


PEAK = """
import json, sys
from onnxdeploy.compare import CompareRequest, compare_report
report = compare_report(CompareRequest(sys.argv[1], sys.argv[2], layerwise=True,
                                       memory_budget_mb=float(sys.argv[3]), slice_nodes=4))
status = open("/proc/self/status").read()
peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) / 1024
print(json.dumps({"peak_mb": peak, "first": report.first_divergence.node,
                  "store_mb": report.peak_ram_mb, "spilled_mb": report.spilled_mb}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_memory_stays_bounded(tmp_path):
    """40 intermediate tensors of 4 MB (160 MB together): under a 16 MB budget the process peaks
    well below the same comparison given room for all of them."""
    size, depth = 1 << 20, 40
    nodes, inits, x = [], [], "x"
    for i in range(depth):
        inits.append(numpy_helper.from_array(np.array(1.0 + i * 1e-3, np.float32), f"c{i}"))
        nodes.append(
            helper.make_node("Add" if i % 2 else "Mul", [x, f"c{i}"], [f"t{i}"], name=f"n{i}")
        )
        x = f"t{i}"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, size])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "ref.onnx")
    _perturb(model, "c30", add=0.5)
    onnx.save(model, tmp_path / "bad.onnx")
    runs = {}
    for budget in (16, 1024):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                PEAK,
                str(tmp_path / "ref.onnx"),
                str(tmp_path / "bad.onnx"),
                str(budget),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs[budget] = json.loads(done.stdout.strip().splitlines()[-1])
    small, large = runs[16], runs[1024]
    assert small["first"] == large["first"] == "n30"
    assert small["store_mb"] <= 16 and small["spilled_mb"] > 100 and large["spilled_mb"] == 0
    assert small["peak_mb"] + 80 < large["peak_mb"], runs  # the tensors did not all sit in memory


def test_store_spills_past_its_budget_and_cleans_up():
    with TensorStore(1000) as store:
        store["a"] = np.zeros(100, np.float32)  # 400 bytes: RAM
        store["b"] = np.zeros(200, np.float32)  # 800 more: disk
        assert store.peak_ram_bytes == 400 and store.spilled_bytes == 800
        assert store["b"].shape == (200,) and set(store.names()) == {"a", "b"}
        folder = store._folder
        store.drop("a")
        store["c"] = np.ones(150, np.float32)  # fits again once "a" is gone
        assert store.peak_ram_bytes == 600
    assert not folder.exists()


@pytest.mark.extra
def test_pytorch_reference_names_the_module_path(cli, tmp_path):
    torch = pytest.importorskip("torch")
    (tmp_path / "net.py").write_text(
        "import torch.nn as nn\n"
        "class Block(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.dense = nn.Linear(16, 16)\n"
        "        self.act = nn.Tanh()\n"
        "    def forward(self, x):\n"
        "        return self.act(self.dense(x))\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.encoder = nn.Sequential(Block(), Block(), Block())\n"
        "        self.head = nn.Linear(16, 4)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.encoder(x))\n"
        "def build():\n"
        "    import torch\n"
        "    torch.manual_seed(0)\n"
        "    return Net()\n"
    )
    code, _, err = cli("export", "net.py:build", "--input-shape", "2x16", "-o", "net.onnx")
    assert code == 0, err
    code, out, err = cli(
        "compare", "net.py:build", "net.onnx", "--layerwise", "--batch", "2", "--json"
    )
    assert code == 0, err
    clean = json.loads(out)
    assert clean["layerwise"]["matched"] >= 3 and clean["first_divergence"] is None
    model = onnx.load(tmp_path / "net.onnx")
    gemm = next(n for n in model.graph.node if "encoder.1.dense" in str(n.metadata_props))
    weight = next(i for i in gemm.input[1:] if any(t.name == i for t in model.graph.initializer))
    _perturb(model, weight, add=0.3)
    onnx.save(model, tmp_path / "bad.onnx")
    code, out, err = cli(
        "compare", "net.py:build", "bad.onnx", "--layerwise", "--batch", "2", "--json"
    )
    assert code == 1
    first = json.loads(out)["first_divergence"]
    assert first["module"].startswith("encoder.1"), first
    assert torch is not None


def test_scalar_tensors_cross_slice_boundaries(tmp_path):
    """A 0-d tensor (a Gather of a shape) fed to the next slice stays 0-d (np.ascontiguousarray
    would make it 1-d and the Concat after its Unsqueeze fail)."""
    const = {
        "zero": np.array(0, np.int64),
        "axes": np.array([0], np.int64),
        "rest": np.array([-1], np.int64),
    }
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather"),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="unsqueeze"),
        helper.make_node("Concat", ["batch1", "rest"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        helper.make_node("Relu", ["flat"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "scalars",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in const.items()],
    )
    path = tmp_path / "m.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path
    )
    report = compare_report(
        CompareRequest(str(path), str(path), layerwise=True, slice_nodes=1, batch=2)
    )
    assert report.passed and report.matched >= 2 and report.first_divergence is None


@pytest.mark.gpu
def test_candidate_on_cuda_layerwise(tmp_path):
    """The candidate (and its slices) on the CUDA provider against the CPU reference."""
    ref = _conv_chain(str(tmp_path / "ref.onnx"))
    report = compare_report(
        CompareRequest(
            ref, ref, provider="cuda", layerwise=True, tolerance=Tolerance(min_snr_db=40)
        )
    )
    assert report.provider == "cuda" and report.passed and report.first_divergence is None
    assert report.matched >= 6


def test_two_different_models_are_exit_2_naming_their_inputs(cli, tmp_path):
    _conv_chain(str(tmp_path / "conv.onnx"))
    _matmul_chain(str(tmp_path / "mm.onnx"))
    for extra in ([], ["--layerwise"]):
        code, _, err = cli("compare", "conv.onnx", "mm.onnx", *extra)
        assert code == 2 and "compare two versions of one model" in err, err
        assert [l for l in err.splitlines() if l.startswith("error:")] == [err.strip().splitlines()[-1]]
        assert "Traceback" not in err


@pytest.mark.extra
def test_in_place_activations_do_not_rewrite_the_recorded_reference(cli, tmp_path):
    """Conv, BatchNorm, ReLU(inplace=True): the BatchNorm output recorded by its hook was rewritten
    by the ReLU after it, so an exact export reported its Conv nodes 'DIVERGES' (issue 31)."""
    pytest.importorskip("torch")
    (tmp_path / "cbr.py").write_text(
        "import torch, torch.nn as nn\n"
        "def build():\n"
        "    torch.manual_seed(0)\n"
        "    layers = []\n"
        "    for cin, cout in ((3, 8), (8, 8)):\n"
        "        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),\n"
        "                   nn.ReLU(inplace=True)]\n"
        "    net = nn.Sequential(*layers).eval()\n"
        "    for m in net:\n"
        "        if isinstance(m, nn.BatchNorm2d):\n"
        "            m.running_mean.normal_(); m.running_var.uniform_(0.5, 2.0)\n"
        "    return net\n"
    )
    code, _, err = cli("export", "cbr.py:build", "--input-shape", "1x3x8x8", "-o", "cbr.onnx")
    assert code == 0, err
    code, out, err = cli("compare", "cbr.py:build", "cbr.onnx", "--layerwise", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["first_divergence"] is None
    convs = [r for r in report["layerwise"]["all"] if r["op"] == "Conv"]
    assert len(convs) == 2 and all(r["passed"] and r["snr_db"] > 60 for r in convs), convs
