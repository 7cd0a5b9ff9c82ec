"""The int8 configuration a CPU wants, decided from its feature flags alone.

Without VNNI, x86 int8 kernels multiply u8 x s8 pairs with ``vpmaddubsw``, whose 16-bit
intermediate sums saturate when weights use the full int8 range; per-channel weights make
that likelier. Quantizing weights to 7 bits (``reduce_range``) keeps every pair sum in range.
VNNI and AMX accumulate in 32 bits, so full-range weights are safe there.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxdeploy.errors import UserError

TARGET_CPUS = {
    "avx2": {"avx2"},
    "avx512-vnni": {"avx2", "avx512f", "avx512_vnni"},
    "amx": {"avx512_vnni", "amx_int8"},
    "arm64": {"asimd", "asimddp"},
}


@dataclass(frozen=True)
class IsaDecision:
    per_channel: bool
    reduce_range: bool
    has_vnni: bool
    reason: str


def decide(flags: set[str]) -> IsaDecision:
    """Default quantization settings for a CPU with these /proc/cpuinfo flags (a pure function)."""
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    if vnni:
        return IsaDecision(
            True,
            False,
            True,
            "CPU has VNNI (32-bit int8 accumulation): full-range per-channel int8 weights are safe",
        )
    if "avx2" in flags or "avx512f" in flags:
        return IsaDecision(
            True,
            True,
            False,
            "CPU has no VNNI: int8 pair sums saturate 16 bits with full-range "
            "weights, so weights use 7 bits (reduce_range)",
        )
    if "asimddp" in flags:
        return IsaDecision(
            True,
            False,
            True,
            "ARM64 with dot-product instructions (sdot/udot accumulate in 32 "
            "bits): full-range per-channel int8 weights are safe",
        )
    if "asimd" in flags:
        return IsaDecision(
            True, False, False, "ARM NEON: no u8 x s8 saturation issue; per-channel full range"
        )
    return IsaDecision(
        True, True, False, "unknown CPU features: using the safe choice, reduce_range"
    )


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
