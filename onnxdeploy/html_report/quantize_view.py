"""quantize's candidates for the report, from ``quantize --json`` or a run's quantize stage, each
with why it was or was not chosen."""

from __future__ import annotations

from onnxdeploy.html_report.content import QuantizeAttempt, QuantizeView
from onnxdeploy.quantize.decision import NOISE


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _why(attempt: dict, chosen: str, chosen_speedup: float | None) -> str:
    name = attempt["name"]
    if name == chosen:
        return "chosen"
    if attempt.get("error"):
        return f"onnxruntime could not apply it: {attempt['error']}"
    if not attempt.get("passed"):
        return attempt.get("rejected") or "failed the quality floor"
    speedup = _number(attempt.get("speedup"))
    if chosen == "fp32":
        return "passed, but not measurably faster than fp32"
    if speedup is not None and chosen_speedup is not None:
        if speedup * NOISE >= chosen_speedup:  # the rule in quantize.decision.fastest
            return (
                f"passed; as fast as {chosen} within timing noise ({speedup:.2f}x vs "
                f"{chosen_speedup:.2f}x): the tie went to the smaller file, then the more accurate"
            )
        return f"passed; slower than {chosen} ({speedup:.2f}x vs {chosen_speedup:.2f}x fp32)"
    return "passed; not chosen"


def _normalised(raw: dict) -> dict:
    """The run summary names a candidate by ``config`` (a string) and its score ``accuracy``;
    ``quantize --json`` nests the candidate (``config.name``) and calls the score ``score``."""
    config = raw.get("config")
    if isinstance(raw.get("candidate"), dict):  # a KV-cache decoder's attempt: agreement with fp32
        candidate = raw["candidate"]
        agreement = raw.get("agreement")
        return {
            **raw,
            "name": str(candidate.get("name")),
            "settings": str(candidate.get("description", "")),
            "score": agreement,
            "drop": None if agreement is None else 100.0 - agreement,
            "rejected": raw.get("why") or None,
            "speedup": raw.get("speedup"),
        }
    if isinstance(config, dict):
        name, settings = str(config.get("name")), str(config.get("description", ""))
    else:
        name, settings = str(config), str(raw.get("settings", ""))
    return {
        **raw,
        "name": name,
        "settings": settings,
        "score": raw.get("score", raw.get("accuracy")),
    }


def quantize_view(data: dict, source: str) -> QuantizeView:
    chosen = str(data.get("chosen", ""))
    fp32_tps = data.get("fp32_decode_tokens_per_s")
    attempts = [_normalised(a) for a in data.get("attempts", [])]
    for a in attempts:  # a decoder's speed-up is in decode tokens/s
        if fp32_tps and a.get("decode_tokens_per_s"):
            a["speedup"] = a["decode_tokens_per_s"] / fp32_tps
    chosen_speedup = next(
        (_number(a.get("speedup")) for a in attempts if a["name"] == chosen), None
    )
    return QuantizeView(
        source,
        chosen,
        str(data.get("reason", "")),
        str(data.get("metric", "accuracy")),
        _number(data.get("fp32_score", data.get("fp32_accuracy"))),
        data.get("target_batch"),
        data.get("target_threads"),
        tuple(
            QuantizeAttempt(
                a["name"],
                a["settings"],
                bool(a.get("passed")),
                a["name"] == chosen,
                _number(a.get("score")),
                _number(a.get("drop")),
                _number(a.get("snr_db")),
                _number(a.get("speedup")),
                _why(a, chosen, chosen_speedup),
            )
            for a in attempts
        ),
    )
