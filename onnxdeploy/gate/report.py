"""Gate outputs: a terminal table, JUnit XML (one test case per entry) and GitHub's step summary."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from onnxdeploy.atomic import write_text
from onnxdeploy.errors import UserError
from onnxdeploy.gate.verdict import EntryVerdict, GateVerdict
from onnxdeploy.tables import markdown_table, text_table

HEADER = ("entry", "metric", "baseline", "current", "ratio", "95% CI", "p-value", "verdict")


def _row(e: EntryVerdict) -> list[str]:
    ci = f"[{e.ci_low:.3f}, {e.ci_high:.3f}]" if e.ci_low is not None else "-"
    p = f"{e.p_value:.2g}" if e.p_value is not None else "-"
    verdict = e.verdict.upper() if e.regression else e.verdict
    return [
        e.name,
        e.metric,
        f"{e.baseline:.4g}",
        f"{e.current:.4g}",
        f"{e.ratio:.3f}",
        ci,
        p,
        verdict,
    ]


def table(verdict: GateVerdict) -> str:
    lines = [text_table(HEADER, [_row(e) for e in verdict.entries])]
    lines += [f"warning: {w}" for w in verdict.warnings]
    regressions = sum(e.regression for e in verdict.entries)
    lines.append(
        f"{'FAIL' if regressions else 'PASS'}: {regressions} regression(s) in "
        f"{len(verdict.entries)} entries "
        f"(latency threshold {verdict.thresholds.latency:.0%} and p < {verdict.thresholds.alpha})"
    )
    return "\n".join(lines)


def markdown(verdict: GateVerdict) -> str:
    status = "passed" if verdict.passed else "**failed**"
    lines = [
        f"### onnxdeploy gate {status}",
        "",
        *markdown_table(HEADER, [_row(e) for e in verdict.entries]),
    ]
    lines += [f"> warning: {w}" for w in verdict.warnings]
    return "\n".join(lines) + "\n"


def junit_xml(verdict: GateVerdict) -> str:
    suite = ET.Element(
        "testsuite",
        name="onnxdeploy-gate",
        tests=str(len(verdict.entries)),
        failures=str(sum(e.regression for e in verdict.entries)),
    )
    for e in verdict.entries:
        case = ET.SubElement(
            suite, "testcase", classname="onnxdeploy.gate", name=f"{e.name} {e.metric}"
        )
        if e.regression:
            failure = ET.SubElement(
                case, "failure", message=f"{e.metric} regressed: ratio {e.ratio:.3f}"
            )
            failure.text = " ".join(_row(e))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_junit(path, verdict: GateVerdict) -> None:
    write_text(path, junit_xml(verdict))


def append_step_summary(verdict: GateVerdict) -> bool:
    """Append Markdown to $GITHUB_STEP_SUMMARY when set; True if written."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    try:
        with open(target, "a", encoding="utf-8") as f:
            f.write(markdown(verdict))
    except OSError as exc:
        raise UserError(
            f"{target}: cannot append the step summary ($GITHUB_STEP_SUMMARY): {exc.strerror}"
        ) from exc
    return True
