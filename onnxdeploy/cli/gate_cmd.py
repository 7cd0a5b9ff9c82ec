"""``onnxdeploy gate``: fail a pipeline when a model got slower, bigger or less accurate (torch-free)."""

from __future__ import annotations

import click

from onnxdeploy.cli.output import announce, emit_json, say
from onnxdeploy.errors import UserError


def _fraction(option: str, text: str) -> float:
    raw = text.strip().rstrip("%")
    try:
        value = float(raw) / (100 if text.strip().endswith("%") or float(raw) > 1 else 1)
    except ValueError:
        raise UserError(f"{option} '{text}': expected a percentage such as 10% or 0.1") from None
    if value < 0:
        raise UserError(f"{option} '{text}': must not be negative")
    return value


@click.command("gate")
@click.option("--baseline", required=True, type=click.Path(), help="Baseline results (bench JSON, run report or folder).")
@click.option("--current", required=True, type=click.Path(), help="Current results to judge.")
@click.option("--latency-threshold", default="10%", show_default=True, help="Slowdown that counts (with significance).")
@click.option("--percentile", "percentiles", multiple=True, type=click.Choice(["p50", "p90", "p99"]),
              help="Latency percentiles to gate (default p50; repeatable).")
@click.option("--throughput-threshold", default="10%", show_default=True)
@click.option("--accuracy-drop", type=float, default=0.5, show_default=True, help="Points of accuracy that may be lost.")
@click.option("--size-threshold", default="5%", show_default=True)
@click.option("--alpha", type=float, default=0.01, show_default=True, help="Significance level of the U test.")
@click.option("--baseline-model", help="Use only this model's entries from --baseline (file name).")
@click.option("--current-model", help="Use only this model's entries from --current (file name).")
@click.option("--strict-env", is_flag=True, help="Different CPU / onnxruntime between the two is an error.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML.")
@click.option("--update-baseline", is_flag=True, help="After the gate, promote current to baseline (atomically).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def gate_command(ctx, baseline, current, latency_threshold, percentiles, throughput_threshold, accuracy_drop,
                 size_threshold, alpha, baseline_model, current_model, strict_env, junit, update_baseline, as_json):
    """Exit 0 when CURRENT holds against BASELINE, 1 on a regression, 2 on invalid input."""
    from onnxdeploy.gate import Thresholds, gate, update_baseline as promote
    from onnxdeploy.gate.report import append_step_summary, table, write_junit

    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha}: must be between 0 and 1")
    thresholds = Thresholds(_fraction("--latency-threshold", latency_threshold),
                            _fraction("--throughput-threshold", throughput_threshold), accuracy_drop,
                            _fraction("--size-threshold", size_threshold), alpha, tuple(percentiles) or ("p50",))
    verdict = gate(baseline, current, thresholds, strict_env=strict_env, baseline_model=baseline_model,
                   current_model=current_model)
    for warning in verdict.warnings:
        announce(warning)
    if junit:
        write_junit(junit, verdict)
    append_step_summary(verdict)
    if as_json:
        emit_json(verdict.to_json())
    else:
        say(table(verdict))
    if update_baseline:
        promote(baseline, current)
        say(f"baseline updated: {current} -> {baseline}")
    ctx.exit(verdict.exit_code)
