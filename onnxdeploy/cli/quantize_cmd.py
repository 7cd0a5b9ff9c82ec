"""``onnxdeploy quantize``: int8 (static QDQ or dynamic), int4 weight-only or --fp16, with accuracy
and latency checks (torch-free). The options come in groups (``cli.groups``): how to quantize
(``QuantizeConfig``), what to accept (``Acceptance``), how to time (``TimingPlan``) and where
(``Where``); the library decides the rest."""

from __future__ import annotations

import click

from onnxdeploy.cli.groups import option_group, where_options
from onnxdeploy.cli.options import POSITIVE, Finite, refuse_given, target_options
from onnxdeploy.cli.output import announce, finish, progress, say
from onnxdeploy.quantize.isa import TARGET_CPUS
from onnxdeploy.quantize.request import BLOCK_SIZES, METHODS, WEIGHTS


def _config(**values) -> "QuantizeConfig":
    from onnxdeploy.quantize import QuantizeConfig

    values["calib_memory_mb"] = values.pop("calib_memory")
    values["exclude"] = tuple(values["exclude"])
    values["block_size"] = int(values["block_size"])
    return QuantizeConfig(**values)


def _acceptance(**values) -> "Acceptance":
    from onnxdeploy.quantize import Acceptance

    values["min_snr_db"] = values.pop("min_snr")
    return Acceptance(**values)


def _timing(iterations: int) -> "TimingPlan":
    from onnxdeploy.runtime_bench.plan import TimingPlan

    return TimingPlan(iterations=iterations)


# how to quantize: QuantizeConfig
config_options = option_group(
    "config",
    _config,
    click.option(
        "--method",
        type=click.Choice(METHODS),
        default=None,
        help="Calibration method (default: minmax, others tried if accuracy needs it); dynamic: int8 "
        "MatMul/Gemm weights, activations quantized at run time.",
    ),
    click.option("--percentile", type=float, default=99.999, show_default=True),
    click.option(
        "--per-channel/--per-tensor",
        "per_channel",
        default=None,
        help="Weight granularity (default: by CPU).",
    ),
    click.option(
        "--reduce-range/--full-range",
        "reduce_range",
        default=None,
        help="7-bit weights (default: by CPU).",
    ),
    click.option("--calib-size", type=int, default=512, show_default=True),
    click.option(
        "--calib-memory",
        "calib_memory",
        type=POSITIVE,
        default=None,
        help="MB of activations calibration may hold at once (default: a quarter of the memory "
        "available, 256-2048 MB); the calibration batch shrinks to fit.",
    ),
    click.option(
        "--batch-size", type=int, default=32, show_default=True, help="Calibration batch size."
    ),
    click.option(
        "--activation-type",
        type=click.Choice(["int8", "uint8"]),
        default=None,
        help="Fix the activation type (default: the CPU's fast kernel first, uint8 on x86 and int8 on "
        "arm64, the other tried too; --explain shows the table).",
    ),
    click.option(
        "--quant-format",
        type=click.Choice(["qdq", "qoperator"]),
        default=None,
        help="Fix the static int8 format (default: QDQ first, QOperator tried too).",
    ),
    click.option(
        "--weight-type", type=click.Choice(["int8", "uint8"]), default="int8", show_default=True
    ),
    click.option(
        "--exclude", multiple=True, help="Node names or op types to keep in fp32 (repeatable)."
    ),
    click.option(
        "--weights",
        type=click.Choice(WEIGHTS),
        default="int8",
        show_default=True,
        help="int4: weight-only MatMulNBits blocks (smaller, for memory-bound targets; "
        "need not be faster).",
    ),
    click.option(
        "--block-size",
        type=click.Choice([str(b) for b in BLOCK_SIZES]),
        default="32",
        show_default=True,
        help="Weights per int4 block.",
    ),
    click.option(
        "--target-cpu",
        type=click.Choice(sorted(TARGET_CPUS)),
        default=None,
        help="Quantize for another CPU than this one.",
    ),
    click.option(
        "--state",
        multiple=True,
        metavar="OUTPUT=INPUT",
        help="With a feed file: score each model over the feeds carrying its own state, OUTPUT of "
        "one feed into INPUT of the next (e.g. stateN=state), as a stream runs it; repeat per state.",
    ),
)
# what may replace fp32: Acceptance (the target batch and threads included)
acceptance_options = option_group(
    "acceptance",
    _acceptance,
    click.option(
        "--max-drop",
        type=Finite(),
        default=1.0,
        show_default=True,
        help="Largest accuracy drop, in points.",
    ),
    click.option(
        "--min-snr",
        type=Finite(),
        default=None,
        help="Also require this output SNR in dB (agreement alone is unstable on near-uniform logits).",
    ),
    click.option(
        "--metric",
        default=None,
        metavar="FILE.py:FN",
        help="Your own quality score, higher is better: fn(outputs, data) -> float on the --eval (else "
        "--calib) samples; --max-drop is then in its units (a detector's F1, an OCR's accuracy).",
    ),
    click.option("--force-int8", is_flag=True, help="Write int8 even when it is slower than fp32."),
    click.option(
        "--min-agreement",
        type=Finite(low=0),
        default=90.0,
        show_default=True,
        help="Decoders with a KV cache: least teacher-forced next-token top-1 agreement with fp32 (%).",
    ),
    click.option(
        "--max-kl",
        type=Finite(low=0),
        default=0.1,
        show_default=True,
        help="Decoders with a KV cache: most mean KL(fp32 || quantized) per token (nats).",
    ),
    target_options,
)
timing_options = option_group(
    "timing",
    _timing,
    click.option(
        "--iterations",
        type=click.IntRange(min=1),
        default=100,
        show_default=True,
        help="Timed runs per model for the latency check.",
    ),
)


@click.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--calib",
    default=None,
    help=".npy, .npz, a folder of them, 'digits' or 'random' (optional with "
    "--method dynamic or --weights int4, which need no calibration: then it is only scored on).",
)
@click.option(
    "--eval",
    "eval_data",
    default=None,
    help="'digits' or .npz of inputs + 'labels' for top-1 accuracy.",
)
@config_options
@acceptance_options
@timing_options
@click.option("--explain", is_flag=True, help="Print the CPU-based decision and exit.")
@click.option(
    "--fp16",
    is_flag=True,
    help="Convert to float16 for GPU targets instead (I/O stay float32); nodes that overflow or "
    "lose precision in fp16 on the data (--calib file, else generated inputs) stay fp32.",
)
@where_options("Score the candidates in parallel")
@click.option("--json", "as_json", is_flag=True)
def quantize_command(
    model, output, calib, eval_data, config, acceptance, timing, explain, fp16, where, as_json
):
    """Quantize MODEL to int8 with calibration data; keep accuracy within --max-drop; never slower
    unsaid."""
    from onnxdeploy.generate.signature import is_kv_decoder
    from onnxdeploy.quantize import convert_fp16, quantize
    from onnxdeploy.quantize.isa import decide, explain_text, target_flags

    if explain:
        flags = target_flags(config.target_cpu)
        decision = decide(flags)
        isa = (
            ", ".join(sorted(f for f in flags if f.startswith(("avx", "amx", "asimd"))))
            or "none found"
        )
        say(
            f"CPU flags: {isa}\nfirst candidate: {decision.types}, per-channel weights: "
            f"{decision.per_channel}, reduce_range: {decision.reduce_range}\n"
            f"why: {decision.reason}\n\n{explain_text()}"
        )
        return
    decoder = not fp16 and is_kv_decoder(model)
    int8_only = (
        "method", "percentile", "per_channel", "reduce_range", "calib_size", "calib_memory",
        "batch_size", "activation_type", "quant_format", "weight_type", "exclude", "weights",
        "block_size", "max_drop", "min_snr", "metric", "target_cpu", "iterations", "cluster",
        "targets", "state",
    )
    if fp16:
        refuse_given(
            (*int8_only, "min_agreement", "max_kl", "force_int8", "target_batch", "target_threads"),
            "does not apply with --fp16 (a float16 conversion, checked layer-wise on --calib)",
        )
    elif decoder:  # --weights int4: its int4 candidates alone (the README's line)
        refuse_given(
            tuple(n for n in int8_only if n != "weights"),
            f"does not apply to {model}, a decoder with a KV cache: its candidates are fixed and "
            "scored by --min-agreement and --max-kl",
        )
    else:
        refuse_given(
            ("min_agreement", "max_kl"),
            f"applies to decoders with a KV cache; {model} is scored by --max-drop (or --metric)",
        )
    if fp16:  # checked layer-wise on --calib when it is a file of inputs, else on generated ones
        from pathlib import Path

        check = calib if calib and Path(calib).is_file() else None
        finish(lambda: convert_fp16(model, output, inputs=check, progress=progress), as_json)
        return
    finish(
        lambda: quantize(
            model,
            output,
            calib=calib,
            eval_data=eval_data,
            config=config,
            acceptance=acceptance,
            timing=timing,
            where=where,
            progress=progress,
            announce=announce,
        ),
        as_json,
    )
