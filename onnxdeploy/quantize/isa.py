"""The int8 configuration a CPU wants, decided from its feature flags alone.

onnxruntime's x86 int8 GEMM/conv kernels (MLAS) multiply unsigned activations by signed weights:
``vpmaddubsw`` on AVX2, ``vpdpbusd`` with VNNI, ``tdpbusd`` with AMX. u8 activations x s8 weights
(u8s8) is the fast path there; s8 activations (s8s8) take a slower route. Measured side by side
on a Xeon with AVX-512 VNNI and AMX (torchvision ResNet-50, QDQ, per-channel, batch 1, fresh
sessions, rounds interleaved): u8s8 2.9x fp32 at 1 thread and 2.7x at 2, s8s8 1.2x and 0.9x.

Without VNNI, ``vpmaddubsw`` adds pairs of u8 x s8 products into 16 bits, which saturate when
weights use the full int8 range: weights then use 7 bits (``reduce_range``), as onnxruntime's docs
advise, and u8 x u8 is the accuracy alternative. VNNI and AMX accumulate in 32 bits, so full-range
weights are safe there. On arm64 onnxruntime's docs recommend s8s8 (``sdot``), u8s8 the
alternative. Timing on the target decides among the candidates in any case; this only orders them.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxdeploy.errors import UserError

TARGET_CPUS = {
    "avx2": {"avx2"},
    "avx512-vnni": {"avx2", "avx512f", "avx512_vnni"},
    "amx": {"avx2", "avx512f", "avx512_vnni", "amx_int8"},
    "arm64": {"asimd", "asimddp"},
}


@dataclass(frozen=True)
class IsaDecision:
    """Settings the CPU wants: the first candidate's, and which alternatives are worth trying."""

    per_channel: bool
    reduce_range: bool
    has_vnni: bool
    reason: str
    activation_type: str = "uint8"  # "uint8": u8s8; "int8": s8s8
    arch: str = "x86"  # "x86", "arm64" or "unknown"

    @property
    def other_activation_type(self) -> str:
        return "int8" if self.activation_type == "uint8" else "uint8"

    @property
    def types(self) -> str:
        return "u8s8" if self.activation_type == "uint8" else "s8s8"


def decide(flags: set[str]) -> IsaDecision:
    """Default quantization settings for a CPU with these /proc/cpuinfo flags (a pure function)."""
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    if vnni:
        kernel = "AMX (tdpbusd)" if "amx_int8" in flags else "VNNI (vpdpbusd)"
        return IsaDecision(
            True,
            False,
            True,
            f"x86 with {kernel}: u8 activations x s8 weights (u8s8) is onnxruntime's fast int8 "
            "kernel, accumulated in 32 bits, so full-range per-channel int8 weights are safe",
        )
    if "avx2" in flags or "avx512f" in flags:
        return IsaDecision(
            True,
            True,
            False,
            "x86 without VNNI: u8s8 (vpmaddubsw) is the fast kernel, but its 16-bit pair sums "
            "saturate with full-range weights, so weights use 7 bits (reduce_range)",
        )
    if "asimddp" in flags:
        return IsaDecision(
            True,
            False,
            True,
            "arm64 with dot-product instructions (sdot/udot accumulate in 32 bits): s8s8, "
            "onnxruntime's recommended arm64 types, full-range per-channel weights",
            activation_type="int8",
            arch="arm64",
        )
    if "asimd" in flags:
        return IsaDecision(
            True,
            False,
            False,
            "arm64 NEON: s8s8 (onnxruntime's recommended arm64 types), per-channel full range",
            activation_type="int8",
            arch="arm64",
        )
    return IsaDecision(
        True,
        True,
        False,
        "unknown CPU features: u8s8 with the safe choice, reduce_range",
        arch="unknown",
    )


def explain_table() -> list[dict]:
    """One row per ``--target-cpu``: the types and settings its first candidate uses, and why."""
    rows = []
    for name, flags in TARGET_CPUS.items():
        d = decide(set(flags))
        rows.append(
            {
                "target": name,
                "types": d.types,
                "then": "s8s8" if d.activation_type == "uint8" else "u8s8",
                "per_channel": d.per_channel,
                "reduce_range": d.reduce_range,
                "why": d.reason,
            }
        )
    return rows


def target_flags(target_cpu: str | None) -> set[str]:
    """Flags of ``--target-cpu``, or of this machine when None."""
    if target_cpu is None:
        from onnxdeploy.runtime_bench.environment import cpu_flags

        return cpu_flags()
    if target_cpu not in TARGET_CPUS:
        raise UserError(
            f"target_cpu '{target_cpu}': choose from {', '.join(TARGET_CPUS)}", param="target_cpu"
        )
    return set(TARGET_CPUS[target_cpu])


def explain_text() -> str:
    """``explain_table`` as a text table (``quantize --explain``)."""
    from onnxdeploy.tables import text_table

    rows = explain_table()
    table = text_table(
        ["target", "first", "then", "reduce_range"],
        [[r["target"], r["types"], r["then"], str(r["reduce_range"])] for r in rows],
    )
    return (
        f"{table}\nx86 rows measured (ResNet-50 QDQ per-channel, batch 1, on an AMX Xeon: u8s8 "
        "2.9x fp32, s8s8 1.2x); arm64 and AVX2's reduce_range from onnxruntime's docs. Every "
        "candidate is timed on the target: this table only orders them."
    )

