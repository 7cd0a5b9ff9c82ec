"""``onnxdeploy gate``: fail a pipeline when a model got slower, bigger or less accurate
(torch-free)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import click

from onnxdeploy.cli.groups import option_group
from onnxdeploy.cli.options import NON_NEGATIVE, Finite
from onnxdeploy.cli.output import announce, emit_json, is_quiet, say
from onnxdeploy.errors import UserError


def fraction(option: str, text: str) -> float:
    """'10%' -> 0.10 and '0.1' -> 0.10: a percentage with its sign, or a plain fraction below 1.

    A plain number of 1 or more is refused as ambiguous (was '1.5' meant as 1.5% or 150%?), and so
    is anything negative, NaN or infinite."""
    cleaned = text.strip()
    percent = cleaned.endswith("%")
    try:
        number = float(cleaned[:-1] if percent else cleaned)
    except ValueError:
        raise UserError(
            f"{option} '{text}': expected a percentage such as 10% or a fraction such as 0.1"
        ) from None
    if not math.isfinite(number) or number < 0:
        raise UserError(f"{option} '{text}': must be a finite number >= 0")
    if not percent and number >= 1:
        raise UserError(
            f"{option} '{text}': ambiguous; write a percentage ({number:g}%) or a fraction below 1 "
            f"({number / 100:g})"
        )
    return number / 100 if percent else number


def _thresholds(
    latency_threshold, percentiles, throughput_threshold, accuracy_drop, size_threshold, alpha
):
    from onnxdeploy.gate import Thresholds

    return Thresholds(
        latency=fraction("--latency-threshold", latency_threshold),
        throughput=fraction("--throughput-threshold", throughput_threshold),
        accuracy_drop=accuracy_drop,
        size=fraction("--size-threshold", size_threshold),
        alpha=alpha,
        percentiles=tuple(percentiles) or ("p50",),
    )


@dataclass(frozen=True)
class Selection:
    """Which entries of each side to judge, and whether another environment is an error."""

    baseline_model: str | None
    current_model: str | None
    strict_env: bool


@dataclass(frozen=True)
class Promotion:
    """After the verdict: promote current to baseline when it passed (or even when not)."""

    update_baseline: bool
    force_update: bool


threshold_options = option_group(
    "thresholds",
    _thresholds,
    click.option(
        "--latency-threshold",
        default="10%",
        show_default=True,
        help="Slowdown that counts (with significance).",
    ),
    click.option(
        "--percentile",
        "percentiles",
        multiple=True,
        type=click.Choice(["p50", "p90", "p99"]),
        help="Latency percentiles to gate (default p50; repeatable).",
    ),
    click.option("--throughput-threshold", default="10%", show_default=True),
    click.option(
        "--accuracy-drop",
        type=NON_NEGATIVE,
        default=0.5,
        show_default=True,
        help="Points of accuracy that may be lost.",
    ),
    click.option("--size-threshold", default="5%", show_default=True),
    click.option(
        "--alpha",
        type=Finite(low=0, high=1, low_open=True, high_open=True),
        default=0.01,
        show_default=True,
        help="Significance level of the U test.",
    ),
)
selection_options = option_group(
    "selection",
    Selection,
    click.option(
        "--baseline-model", help="Use only this model's entries from --baseline (file name)."
    ),
    click.option(
        "--current-model", help="Use only this model's entries from --current (file name)."
    ),
    click.option(
        "--strict-env",
        is_flag=True,
        help="Different CPU / onnxruntime between the two is an error.",
    ),
)
promotion_options = option_group(
    "promotion",
    Promotion,
    click.option(
        "--update-baseline",
        is_flag=True,
        help="After a passing gate, promote current to baseline (atomically).",
    ),
    click.option(
        "--force-update",
        is_flag=True,
        help="Promote current to baseline even when the gate fails (said loudly).",
    ),
)


@click.command("gate")
@click.option(
    "--baseline",
    required=True,
    type=click.Path(),
    help="Baseline results (bench JSON, run report or folder).",
)
@click.option("--current", required=True, type=click.Path(), help="Current results to judge.")
@threshold_options
@selection_options
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML.")
@promotion_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def gate_command(ctx, baseline, current, thresholds, selection, junit, promotion, as_json):
    """Exit 0 when CURRENT holds against BASELINE, 1 on a regression, 2 on invalid input."""
    from onnxdeploy.atomic import refuse_overwrite
    from onnxdeploy.gate import gate, update_baseline as promote
    from onnxdeploy.gate.report import append_step_summary, table, write_junit

    refuse_overwrite([junit], [baseline, current])
    verdict = gate(
        baseline,
        current,
        thresholds,
        strict_env=selection.strict_env,
        baseline_model=selection.baseline_model,
        current_model=selection.current_model,
    )
    for warning in verdict.warnings:
        announce(warning)
    if junit:
        write_junit(junit, verdict)
    append_step_summary(verdict)
    if as_json:
        emit_json(verdict.to_json())
    else:
        say(table(verdict))
    if not verdict.passed and (is_quiet() or as_json):  # a failing gate is never silent
        click.echo(table(verdict).splitlines()[-1], err=True)
    if promotion.update_baseline or promotion.force_update:
        if promote(baseline, current, verdict=verdict, force=promotion.force_update):
            if not verdict.passed:
                announce(
                    f"the gate FAILED and --force-update promoted {current} to baseline {baseline} "
                    "anyway"
                )
            say(f"baseline updated: {current} -> {baseline}")
        else:
            announce(
                f"the gate failed: baseline {baseline} NOT updated (--force-update promotes anyway)"
            )
    ctx.exit(verdict.exit_code)
