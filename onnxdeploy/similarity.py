"""How close one array is to another: the one definition of SNR, cosine similarity and the
atol/rtol errors, used by quantize's scoring, compare, export parity, package's round trip and the
report (numpy only; float64 arithmetic).

SNR is over every element: 10 log10(sum ref^2 / sum (cand - ref)^2), +inf when they are equal,
-inf when the reference is all zeros and the candidate is not. Cosine is per sample (axis 0; a 0-d
or 1-d array is one sample), averaged: a batch of outputs is judged output by output, not as one
long vector where a large sample would hide a wrong small one."""

from __future__ import annotations

import math

import numpy as np

TINY = np.finfo(np.float32).tiny  # the floor under |ref| in relative errors


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = np.asarray(reference, np.float64)
    noise = float(np.sum((np.asarray(candidate, np.float64) - ref) ** 2))
    signal = float(np.sum(ref * ref))
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over samples of each sample's cosine similarity (1.0 where a sample is identical,
    0.0 where one side is all zeros and the other is not)."""
    a = np.asarray(reference, np.float64)
    b = np.asarray(candidate, np.float64)
    if a.ndim <= 1:
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if a.shape[0] == 0:
        return 1.0
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.all(a == b, axis=1)
    per = np.where(same, 1.0, np.sum(a * b, axis=1) / np.where(norms == 0, 1.0, norms))
    return float(np.mean(per))


def errors(reference: np.ndarray, candidate: np.ndarray, rtol: float):
    """(absolute errors, relative errors, the atol that would have passed at ``rtol``) of finite
    float64 arrays of one shape."""
    ref = np.asarray(reference, np.float64)
    abs_err = np.abs(np.asarray(candidate, np.float64) - ref)
    rel_err = abs_err / np.maximum(np.abs(ref), TINY)
    required = max(float(np.max(abs_err - rtol * np.abs(ref), initial=0.0)), 0.0)
    return abs_err, rel_err, required


def within(reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float) -> bool:
    """Every element within ``atol + rtol * |ref|`` (numpy's allclose rule, asymmetric)."""
    ref = np.asarray(reference, np.float64)
    abs_err = np.abs(np.asarray(candidate, np.float64) - ref)
    return bool(np.all(abs_err <= atol + rtol * np.abs(ref)))


__all__ = ["TINY", "cosine", "errors", "snr_db", "within"]
