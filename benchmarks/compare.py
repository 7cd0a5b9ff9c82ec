"""Locating divergence: ``onnxdeploy compare --layerwise`` beside Polygraphy's ``run --onnxrt
--onnx-outputs mark all`` on the same model pairs, same inputs.

Two pairs, each with a planted fault whose node is known:
  int8: a random-init BERT (``transformers``) exported by onnxdeploy, quantized by onnxruntime
        (QDQ, per-tensor), then one MatMul's weight scale made 8x too large (its int8 weights
        now mean 8x the values): int8 fails any reasonable floor, at that node.
  fp16: the same fp32 model with a Mul by 4e4 (and back) planted after one layer's FFN
        activation, converted to fp16 by onnxruntime's converter: the Mul overflows fp16.
Each tool runs in its own process (peak RSS from /proc VmHWM, wall time); Polygraphy as its users
run it: the reference with every tensor marked and saved, then the candidate with every tensor
marked, compared against the saved outputs (its default tolerances). "found" is whether the first
tensor reported failing, in the candidate's topological order, is the planted node's.

    python benchmarks/compare.py [--hidden 256 --layers 4 --seq 128 --batch 8]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnxdeploy.compare.graph import module_path

# this folder's transformers.py must not shadow the package (python puts the script's folder first)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def _sibling(name: str):
    """A module of this folder, loaded by path (the folder on sys.path would shadow the
    ``transformers`` package with benchmarks/transformers.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_watched_output = _sibling("quantize_memory").run_watched_output

OURS = """
import json, sys
from onnxdeploy.compare import CompareRequest, compare_report
r = compare_report(CompareRequest(sys.argv[1], sys.argv[2], inputs=sys.argv[3], layerwise=True))
first = r.first_divergence
print("RESULT", json.dumps({"first": first.node if first else None, "label": first.label if first else None,
                            "failing": sum(not n.diff.passed for n in r.nodes), "compared": len(r.nodes),
                            "outputs_passed": r.passed}))
"""

POLYGRAPHY = """
import sys
from polygraphy.tools._main import main
sys.argv = ["polygraphy", "run", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
"""


def _bert(work: Path, hidden: int, layers: int) -> Path:
    from transformers import BertConfig, BertModel

    import onnxdeploy

    config = BertConfig(
        vocab_size=1000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=4 * hidden,
        max_position_embeddings=512,
    )
    folder = work / "bert"
    BertModel(config).eval().save_pretrained(folder)
    path = work / "bert.onnx"
    onnxdeploy.export(f"hf:{folder}", path)
    return path


def _feeds(model: Path, batch: int, seq: int, work: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    names = [i.name for i in onnx.load(str(model), load_external_data=False).graph.input]
    feeds = {}
    for name in names:
        if "mask" in name:
            feeds[name] = np.ones((batch, seq), np.int64)
        elif "type" in name:
            feeds[name] = np.zeros((batch, seq), np.int64)
        else:
            feeds[name] = rng.integers(0, 1000, (batch, seq)).astype(np.int64)
    npz = work / "inputs.npz"
    np.savez(npz, **feeds)
    from polygraphy.json import save_json

    as_json = work / "inputs.json"
    save_json([feeds], str(as_json))
    return npz, as_json


def _plant_int8(fp32: Path, npz: Path, work: Path, layer: int) -> tuple[Path, str]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    arrays = dict(np.load(npz))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([arrays])

        def get_next(self):
            return next(self.items, None)

    q = work / "bert.int8.onnx"
    quantize_static(
        str(fp32),
        str(q),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=False,
        op_types_to_quantize=["MatMul"],
    )
    model = onnx.load(str(q))
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    target = next(
        (n for n in matmuls if f"layer.{layer}.intermediate" in module_path(n)),
        matmuls[len(matmuls) // 2],
    )
    producers = {o: n for n in model.graph.node for o in n.output}
    for name in target.input:
        dq = producers.get(name)
        if (
            dq is not None
            and dq.op_type == "DequantizeLinear"
            and dq.input[0] in {t.name for t in model.graph.initializer}
        ):
            scale = next(t for t in model.graph.initializer if t.name == dq.input[1])
            scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 8, scale.name))
            break
    out = work / "bert.int8.planted.onnx"
    onnx.save(model, str(out))
    return out, target.name


def _plant_fp16(fp32: Path, npz: Path, work: Path, layer: int) -> tuple[Path, Path, str]:
    """A Mul that takes the FFN activation of ``layer`` to twice fp16's largest value on these
    inputs (and a Mul back), converted to fp16 by onnxruntime's converter."""
    import onnxruntime as ort
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32))
    nodes = list(model.graph.node)
    act = [n for n in nodes if f"layer.{layer}.intermediate" in module_path(n)][-1]
    tensor = act.output[0]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_empty_tensor_value_info(tensor))
    session = ort.InferenceSession(probe.SerializeToString())
    largest = float(np.abs(session.run([tensor], dict(np.load(npz)))[0]).max())
    factor = 2 * 65504.0 / largest
    up = helper.make_node("Mul", [tensor, "planted_up"], ["planted_big"], name="planted_overflow")
    down = helper.make_node(
        "Mul", ["planted_big", "planted_down"], ["planted_back"], name="planted_back"
    )
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == tensor:
                node.input[i] = "planted_back"
    index = nodes.index(act) + 1
    del model.graph.node[:]
    model.graph.node.extend(nodes[:index] + [up, down] + nodes[index:])
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(factor, np.float32), "planted_up"),
            numpy_helper.from_array(np.array(1 / factor, np.float32), "planted_down"),
        ]
    )
    ref = work / "bert.planted.onnx"
    onnx.save(model, str(ref))
    half = work / "bert.fp16.onnx"
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(half))
    return ref, half, "planted_overflow"


def _polygraphy_first(log: str, candidate: Path) -> str | None:
    """The first output Polygraphy reports failing, in the candidate's topological order, as the
    node that produces it."""
    failed = set(re.findall(r"FAILED \| Output: '([^']+)'", log))
    model = onnx.load(str(candidate), load_external_data=False)
    for node in model.graph.node:
        if any(o in failed for o in node.output):
            return node.name
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cap-mb", type=float, default=16000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    fp32 = _bert(work, args.hidden, args.layers)
    npz, inputs_json = _feeds(fp32, args.batch, args.seq, work)
    layer = args.layers // 2
    int8, int8_node = _plant_int8(fp32, npz, work, layer)
    ref16, fp16, fp16_node = _plant_fp16(fp32, npz, work, layer)
    rows = []
    for case, ref, cand, planted in (
        ("int8", fp32, int8, int8_node),
        ("fp16", ref16, fp16, fp16_node),
    ):
        peak, wall, stopped, out = run_watched_output(
            OURS, str(ref), str(cand), str(npz), cap_mb=args.cap_mb
        )
        found = json.loads(out.split("RESULT", 1)[1].splitlines()[0]) if "RESULT" in out else {}
        rows.append(
            (
                case,
                "onnxdeploy compare --layerwise",
                peak,
                wall,
                stopped,
                found.get("first"),
                planted,
                f"{found.get('failing')}/{found.get('compared')} nodes fail",
            )
        )
        saved = work / f"{case}.ref_outputs.json"

        def polygraphy(model, *extra):  # as its users run it: every tensor marked
            marked = (
                "--onnxrt",
                "--onnx-outputs",
                "mark",
                "all",
                "--load-inputs",
                str(inputs_json),
            )
            return run_watched_output(POLYGRAPHY, str(model), *marked, *extra, cap_mb=args.cap_mb)

        peak1, wall1, stop1, _ = polygraphy(ref, "--save-outputs", str(saved))
        for label, extra in (
            ("defaults", []),
            (
                "median error, atol/rtol 0.05",
                ["--check-error-stat", "median", "--atol", "0.05", "--rtol", "0.05"],
            ),
        ):
            peak2, wall2, stop2, log = (
                (0.0, 0.0, True, "")
                if stop1
                else polygraphy(cand, "--load-outputs", str(saved), *extra)
            )
            failed = len(set(re.findall(r"FAILED \| Output: '([^']+)'", log)))
            compared = len(set(re.findall(r"Output: '([^']+)'", log)))
            rows.append(
                (
                    case,
                    f"polygraphy --mark all, {label}",
                    max(peak1, peak2),
                    wall1 + wall2,
                    stop1 or stop2,
                    _polygraphy_first(log, cand),
                    planted,
                    f"{failed}/{compared} outputs fail",
                )
            )
    params = sum(
        int(np.prod(t.dims))
        for t in onnx.load(str(fp32), load_external_data=False).graph.initializer
    )
    print(
        f"\nBERT hidden {args.hidden}, {args.layers} layers ({params / 1e6:.1f}M parameters), batch {args.batch} x "
        f"seq {args.seq}; one process per tool, peak RSS (VmHWM)"
    )
    print(
        f"{'case':5} {'tool':50} {'peak MB':>8} {'wall s':>7}  found  first diverging node; detail"
    )
    for case, tool, peak, wall, stopped, first, planted, detail in rows:
        cap = " (stopped at cap)" if stopped else ""
        found = "yes" if first == planted else "no"
        print(f"{case:5} {tool:50} {peak:8.0f} {wall:7.1f}  {found:5}  {first}; {detail}{cap}")
    print(f"\nplanted: int8 at {int8_node}, fp16 at {fp16_node}; files in {work}")


if __name__ == "__main__":
    main()
