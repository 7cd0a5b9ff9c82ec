"""How far one tensor is from its reference: the measures a user reads (max abs/rel, cosine, SNR,
top-1 agreement, NaN/Inf counts) and the tolerance it passes or fails."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from onnxdeploy import similarity

from onnxdeploy.errors import UserError


@dataclass(frozen=True)
class Tolerance:
    """A tensor passes when every element is within ``atol + rtol * |reference|``, or, where
    ``min_snr_db`` is set, when its SNR reaches it (quantized models: every element moves a
    little; what matters is how much signal is left). NaN or Inf where the reference is finite
    always fails."""

    atol: float = 1e-4
    rtol: float = 1e-3
    min_snr_db: float | None = None

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"{name} {value}: must be a finite number >= 0", param=name)
        if self.min_snr_db is not None and not math.isfinite(self.min_snr_db):
            raise UserError(
                f"min_snr {self.min_snr_db}: must be a finite number of dB", param="min_snr"
            )

    def describe(self) -> str:
        if self.min_snr_db is not None:
            return f"SNR >= {self.min_snr_db:g} dB"
        return f"atol {self.atol:g} + rtol {self.rtol:g}"


@dataclass(frozen=True)
class TensorDiff:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mean_abs: float
    cosine: float
    snr_db: float  # 10 log10(signal power / error power); inf when equal
    top1: float | None  # agreement of the last axis' argmax (outputs with >= 2 classes), percent
    nan: int  # NaN / Inf in the candidate where the reference is finite
    inf: int
    required_atol: float  # the atol that would have passed at this rtol
    passed: bool
    note: str = ""  # why it could not be compared (shape, missing)

    def to_json(self) -> dict:
        data = {k: jsonable(v) for k, v in asdict(self).items()}
        data["shape"] = list(self.shape)
        return data


def jsonable(value):
    """JSON has no NaN or Inf: those floats become the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def not_comparable(name: str, note: str) -> TensorDiff:
    nan = float("nan")
    return TensorDiff(name, (), nan, nan, nan, nan, nan, None, 0, 0, nan, False, note)


def tensor_diff(
    name: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    tolerance: Tolerance,
    *,
    top1: bool = False,
) -> TensorDiff:
    """Every measure of ``candidate`` against ``reference`` (float64 arithmetic)."""
    ref = np.asarray(reference)
    got = np.asarray(candidate)
    if ref.shape != got.shape:
        return not_comparable(name, f"shape {list(got.shape)} != reference {list(ref.shape)}")
    ref64 = ref.astype(np.float64)
    got64 = got.astype(np.float64)
    ref_finite = np.isfinite(ref64)
    nan = int(np.count_nonzero(np.isnan(got64) & ref_finite))
    inf = int(np.count_nonzero(np.isinf(got64) & ref_finite))
    shape = tuple(int(d) for d in ref.shape)
    if ref.size == 0:
        return TensorDiff(name, shape, 0.0, 0.0, 0.0, 1.0, math.inf, None, 0, 0, 0.0, True)
    if nan or inf:
        bad = float("nan")
        return TensorDiff(
            name,
            shape,
            math.inf,
            math.inf,
            math.inf,
            bad,
            -math.inf,
            None,
            nan,
            inf,
            math.inf,
            False,
            f"{nan} NaN and {inf} Inf where the reference is finite",
        )
    both = ref_finite & np.isfinite(got64)
    # where the reference itself is not finite, both sides count as equal (zeroed): the measures
    # keep the tensor's samples for the per-sample cosine (``onnxdeploy.similarity``)
    ref_z, got_z = np.where(both, ref64, 0.0), np.where(both, got64, 0.0)
    cosine = similarity.cosine(ref_z, got_z)
    snr = similarity.snr_db(ref_z, got_z)
    ref64, got64 = ref64[both], got64[both]
    abs_err, rel, required = similarity.errors(ref64, got64, tolerance.rtol)
    max_abs = float(abs_err.max(initial=0.0))
    if tolerance.min_snr_db is not None:
        passed = snr >= tolerance.min_snr_db
    else:
        passed = similarity.within(ref64, got64, tolerance.atol, tolerance.rtol)
    agreement = None
    if top1 and ref.ndim >= 2 and ref.shape[-1] >= 2:
        agreement = 100.0 * float(np.mean(np.argmax(ref, axis=-1) == np.argmax(got, axis=-1)))
    return TensorDiff(
        name,
        shape,
        max_abs,
        float(rel.max(initial=0.0)),
        float(abs_err.mean()),
        cosine,
        snr,
        agreement,
        0,
        0,
        max(required, 0.0),
        passed,
    )


def severity(diff: TensorDiff) -> float:
    """Sort key, worst first: NaN/Inf, then the lowest SNR."""
    if diff.note and not (diff.nan or diff.inf):
        return math.inf  # not compared: last
    if diff.nan or diff.inf:
        return -math.inf
    return diff.snr_db
