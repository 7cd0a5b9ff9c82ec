"""Models past protobuf's 2 GiB: prune-channels, optimize, inspect and quantize through external data.

Builds a seeded MatMul/Relu chain whose weights (about --gb GB, float32) live in external data, with a
quarter of the hidden units of every layer zeroed, then runs each command on it and reports time, peak
memory of the process, the sizes on disk (external data included) and the verification numbers.
Nothing is downloaded. Needs about 6x the model size in RAM.
"""

from __future__ import annotations

import argparse
import math
import logging
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(path: Path, *, width: int, layers: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((width, width), dtype=np.float32) / np.sqrt(width)).astype(
            np.float32
        )
        if i < layers - 1:
            w[:, rng.choice(width, width // 4, replace=False)] = (
                0  # a quarter of the hidden units are dead
            )
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"]))
        x = f"h{i}"
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", width])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.2, help="size of the weights in GB")
    parser.add_argument("--width", type=int, default=8192)
    args = parser.parse_args()
    logging.getLogger("onnxdeploy").setLevel(logging.ERROR)
    from onnxdeploy.inspect_model import inspect_model
    from onnxdeploy.onnx_io import file_bytes
    from onnxdeploy.passes import DEFAULT_PIPELINE, make_passes, prune_channels, run_passes

    layers = max(2, math.ceil(args.gb * 1e9 / (args.width * args.width * 4)))
    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-big-"))
    try:
        source = work / "big.onnx"
        started = time.perf_counter()
        build(source, width=args.width, layers=layers)
        print(
            f"built {layers} MatMul layers of {args.width}x{args.width}: {file_bytes(source) / 1e9:.2f} GB "
            f"on disk (model file {source.stat().st_size / 1e3:.1f} kB + external data) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        summary = inspect_model(source)
        print(
            f"inspect: {summary.file_bytes / 1e9:.2f} GB, {summary.parameters / 1e6:.0f} M parameters "
            f"({time.perf_counter() - started:.1f} s)"
        )
        for label, run in (
            ("prune-channels", lambda out: prune_channels(source, out)),
            (
                "optimize (default passes)",
                lambda out: run_passes(source, out, make_passes(DEFAULT_PIPELINE)),
            ),
            ("prune-channels again onto the same output", lambda out: prune_channels(source, out)),
        ):
            out = work / "out.onnx"
            started = time.perf_counter()
            result = run(out)
            print(
                f"{label}: {time.perf_counter() - started:.1f} s, parameters {result.params_before / 1e6:.0f} M -> "
                f"{result.params_after / 1e6:.0f} M, bytes {result.bytes_before / 1e9:.2f} GB -> "
                f"{result.bytes_after / 1e9:.2f} GB (on disk: {file_bytes(out) / 1e9:.2f} GB), outputs max rel "
                f"{result.comparison.max_rel:.2e} -> {'PASS' if result.comparison else 'FAIL'}; "
                f"files: {sorted(p.name for p in work.iterdir())}"
            )
        print(f"peak RSS of the process: {peak_gb():.1f} GB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
