"""``quantize``: static int8 QDQ with ISA-aware defaults, an accuracy bound and a latency check.

Every candidate configuration is scored (accuracy on --eval, else agreement with fp32 on
held-out calibration samples); passing ones and fp32 are then timed side by side at the
target batch, and the fastest passing one wins. An int8 model slower than fp32 is never
written silently: fp32 is kept and the reason printed, unless ``force_int8``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import onnx

from onnxdeploy.atomic import ensure_writable_dir
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.onnx_io import load_model, save_model
from onnxdeploy.quantize import calib_data
from onnxdeploy.quantize.configs import QuantConfig, apply_config, candidates
from onnxdeploy.quantize.isa import decide, target_flags
from onnxdeploy.quantize.scoring import EvalSet, load_eval, outputs, score

logger = logging.getLogger(__name__)

QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
                 "DynamicQuantizeLinear"}
HOLDOUT = 256


@dataclass(frozen=True)
class Attempt:
    config: QuantConfig
    score: float
    drop: float
    snr_db: float
    passed: bool
    p50_ms: float | None = None
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None  # bootstrap 95% CI of fp32 p50 / int8 p50


@dataclass(frozen=True)
class QuantizeResult:
    output: str
    chosen: str  # a config name, or "fp32"
    reason: str
    metric: str  # "accuracy" or "agreement"
    fp32_score: float
    fp32_p50_ms: float | None
    attempts: tuple[Attempt, ...]
    isa_reason: str
    target_batch: int
    bytes_before: int
    bytes_after: int
    calib_samples: int
    eval_samples: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        data = asdict(self)
        data["attempts"] = [{**asdict(a), "config": {**asdict(a.config), "description": a.config.describe()}}
                            for a in self.attempts]
        return data

    def __str__(self) -> str:
        lines = [f"CPU: {self.isa_reason}",
                 f"fp32 {self.metric} {self.fp32_score:.2f}%  (calibrated on {self.calib_samples} samples, "
                 f"scored on {self.eval_samples})",
                 f"{'config':<16} {'settings':<44} {self.metric:>9} {'drop':>6} {'SNR dB':>7} "
                 f"{'p50 ms':>8} {'vs fp32':>8}  result"]
        for a in self.attempts:
            p50 = f"{a.p50_ms:.4f}" if a.p50_ms is not None else "-"
            speed = f"{a.speedup:.2f}x" if a.speedup is not None else "-"
            lines.append(f"{a.config.name:<16} {a.config.describe()[:44]:<44} {a.score:>8.2f}% {a.drop:>6.2f} "
                         f"{a.snr_db:>7.1f} {p50:>8} {speed:>8}  {'pass' if a.passed else 'FAIL'}")
        if self.fp32_p50_ms is not None:
            lines.append(f"fp32 p50 at batch {self.target_batch}: {self.fp32_p50_ms:.4f} ms")
        lines.append(f"chosen: {self.chosen} -> {self.output} ({self.bytes_before / 1024:.1f} KiB -> "
                     f"{self.bytes_after / 1024:.1f} KiB): {self.reason}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _check_not_quantized(model: onnx.ModelProto, path: str) -> None:
    found = sorted({n.op_type for n in model.graph.node} & QUANTIZED_OPS)
    if found:
        raise UserError(f"{path}: already quantized (has {', '.join(found)}); quantize the float model")


def _preprocess(src: str, dst: str, announce) -> str:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(src, dst, skip_symbolic_shape=False)
    except Exception as exc:
        announce(f"quant_pre_process failed ({type(exc).__name__}: {str(exc)[:120]}); quantizing the model as is")
        shutil.copy(src, dst)
    model = onnx.load(dst)
    for i, node in enumerate(model.graph.node):  # nodes need names to be excluded by name
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    onnx.save(model, dst)
    return dst


def quantize(model_path: str, output: str, *, calib: str, eval_data: str | None = None, method: str | None = None,
             per_channel: bool | None = None, reduce_range: bool | None = None, percentile: float = 99.999,
             calib_size: int = 512, batch_size: int = 32, activation_type: str = "int8", weight_type: str = "int8",
             exclude: tuple[str, ...] = (), max_drop: float = 1.0, target_batch: int = 1,
             target_cpu: str | None = None, force_int8: bool = False, iterations: int = 100,
             progress: Callable[[str], None] = lambda m: None, announce: Callable[[str], None] = logger.warning
             ) -> QuantizeResult:
    """Quantize ``model_path`` to int8 QDQ and write the fastest model that keeps the accuracy bound."""
    model_path, output = str(model_path), str(output)
    ensure_writable_dir(output)
    model = load_model(model_path)
    _check_not_quantized(model, model_path)
    if calib_size <= 0 or batch_size <= 0 or target_batch <= 0:
        raise UserError("--calib-size, --batch-size and --target-batch must be positive")
    specs = calib_data.model_inputs(model)
    decision = decide(target_flags(target_cpu))
    tries = candidates(decision, model, method=method, per_channel=per_channel, reduce_range=reduce_range,
                       percentile=percentile, activation_type=activation_type, weight_type=weight_type,
                       exclude=exclude)
    source = calib_data.sample_source(calib, specs)
    total = calib_size + HOLDOUT if calib == "random" else calib_data.count_samples(source)
    if total == 0:
        raise UserError(f"{calib}: empty calibration set")
    n_calib = min(calib_size, total if eval_data else max(1, int(total * 0.8)))
    # uniform batches: all full, a last partial one only when it is the only one
    full = n_calib // batch_size
    reader = calib_data.StreamingReader(
        lambda: calib_data.batches(source, specs, batch_size=batch_size, limit=n_calib, uniform=True),
        batch_count=max(full, 1))
    n_calib = full * batch_size if full else n_calib
    if eval_data:
        evalset = load_eval(eval_data, specs)
    else:
        held = list(calib_data.batches(source, specs, batch_size=10_000, limit=min(HOLDOUT, total - n_calib),
                                       skip=n_calib))
        if not held:
            raise UserError(f"{calib}: too few samples to hold some out for scoring; give --eval")
        evalset = EvalSet({k: held[0][k] for k in held[0]}, None, f"{calib} (held out)")
    work = Path(tempfile.mkdtemp(prefix="onnxdeploy-quant-"))
    try:
        return _search(model_path, output, work, tries, reader, evalset, decision, max_drop, target_batch,
                       force_int8, iterations, n_calib, progress, announce)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _search(model_path, output, work, tries, reader, evalset, decision, max_drop, target_batch, force_int8,
            iterations, n_calib, progress, announce) -> QuantizeResult:
    from onnxdeploy.runtime_bench import benchmark

    pre = _preprocess(model_path, str(work / "pre.onnx"), announce)
    reference = outputs(pre, evalset.inputs)
    fp32 = score(pre, evalset, reference)
    attempts, paths = [], {}

    def attempt(config: QuantConfig) -> Attempt:
        path = str(work / f"{config.name}.onnx")
        progress(f"quantizing: {config.name} ({config.describe()})")
        apply_config(config, pre, path, reader)
        s = score(path, evalset, reference)
        drop = fp32.value - s.value
        result = Attempt(config, s.value, drop, s.snr_db, drop <= max_drop)
        attempts.append(result)
        paths[config.name] = path
        return result

    for config in tries:
        attempt(config)
    if not any(a.passed for a in attempts):
        best = max(attempts, key=lambda a: (a.score, a.snr_db))
        from onnxdeploy.quantize.fallback import worst_nodes

        ranked = worst_nodes(pre, paths[best.config.name], reader)
        count = 1
        while count <= len(ranked):
            excluded = tuple(dict.fromkeys(best.config.exclude_nodes + tuple(ranked[:count])))
            if attempt(replace(best.config, name=f"fallback-{count}", exclude_nodes=excluded)).passed:
                break
            count *= 2
    passing = [a for a in attempts if a.passed]
    bytes_before = os.path.getsize(model_path)
    common = dict(metric=fp32.kind, fp32_score=fp32.value, isa_reason=decision.reason, target_batch=target_batch,
                  bytes_before=bytes_before, calib_samples=n_calib,
                  eval_samples=len(next(iter(evalset.inputs.values()))))
    if not passing:
        best = max(attempts, key=lambda a: (a.score, a.snr_db))
        failed = str(Path(output).with_name(Path(output).stem + ".int8-failed.onnx"))
        save_model(onnx.load(paths[best.config.name]), failed)
        result = QuantizeResult(failed, "none", f"no configuration kept the {fp32.kind} drop within {max_drop} "
                                f"points; best attempt kept as {failed}", fp32_p50_ms=None, attempts=tuple(attempts),
                                bytes_after=os.path.getsize(failed), **common)
        raise CheckFailed(f"{output}: not written\n{result}")
    progress(f"timing fp32 and {len(passing)} passing configuration(s) at batch {target_batch}, side by side")
    timed = benchmark([pre] + [paths[a.config.name] for a in passing], batch=target_batch, iterations=iterations)
    from onnxdeploy.runtime_bench import bootstrap_ratio_ci

    fp32_p50 = timed[0].stats.p50_ms
    by_path = {r.model: r for r in timed[1:]}
    attempts = [replace(a, p50_ms=by_path[paths[a.config.name]].stats.p50_ms,
                        speedup=fp32_p50 / by_path[paths[a.config.name]].stats.p50_ms,
                        speedup_ci=bootstrap_ratio_ci(timed[0].samples_ms, by_path[paths[a.config.name]].samples_ms))
                if a.passed else a for a in attempts]
    passing = [a for a in attempts if a.passed]
    fastest = min(passing, key=lambda a: a.p50_ms)
    if passing[0].p50_ms <= fastest.p50_ms * 1.03:
        fastest = passing[0]  # within timing noise of the first choice: keep the ISA default
    notes = []
    low, high = fastest.speedup_ci
    if low <= 1.0 and not force_int8:  # not measurably faster: the CI of the speed-up reaches 1.0
        save_model(load_model(model_path, check=False), output)
        reason = (f"no int8 configuration is measurably faster than fp32 at batch {target_batch} on this CPU (best "
                  f"{fastest.config.name}: {fastest.speedup:.2f}x, 95% CI {low:.2f}-{high:.2f}); wrote the fp32 "
                  "model (use --force-int8 to override)")
        announce(reason)
        return QuantizeResult(output, "fp32", reason, fp32_p50_ms=fp32_p50, attempts=tuple(attempts),
                              bytes_after=os.path.getsize(output), **common)
    if low <= 1.0:
        word = "SLOWER than" if fastest.speedup < 1.0 else "not measurably faster than"
        notes.append(f"int8 is {word} fp32 at batch {target_batch} ({fastest.speedup:.2f}x, 95% CI {low:.2f}-"
                     f"{high:.2f}); written because --force-int8 was given")
        announce(notes[-1])
    save_model(onnx.load(paths[fastest.config.name]), output)
    reason = (f"fastest configuration within {max_drop} points of fp32 {fp32.kind} "
              f"({fastest.drop:+.2f} drop, {fastest.speedup:.2f}x fp32 speed at batch {target_batch}, "
              f"95% CI {low:.2f}-{high:.2f})")
    return QuantizeResult(output, fastest.config.name, reason, fp32_p50_ms=fp32_p50, attempts=tuple(attempts),
                          bytes_after=os.path.getsize(output), notes=tuple(notes), **common)


def convert_fp16(model_path: str, output: str, *, keep_io_types: bool = True) -> dict:
    """float16 weights and compute for GPU targets; inputs and outputs stay float32 unless asked."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from onnxdeploy.passes.verify import verify_equivalent

    model = load_model(model_path)
    _check_not_quantized(model, model_path)
    half = convert_float_to_float16(model, keep_io_types=keep_io_types)
    comparison = verify_equivalent(model, half, rtol=1e-2) if keep_io_types else None
    if comparison is not None and not comparison:
        raise CheckFailed(f"{model_path}: float16 outputs differ beyond 1e-2 relative\n{comparison}")
    save_model(half, output)
    return {"output": output, "bytes_before": os.path.getsize(model_path), "bytes_after": os.path.getsize(output),
            "comparison": comparison.to_json() if comparison is not None else None}
