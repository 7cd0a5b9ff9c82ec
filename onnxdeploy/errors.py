"""Typed errors whose class decides the process exit code.

Exit codes shared by every command:
  0  success
  1  the command ran but a check failed (parity, accuracy, regression)   -> CheckFailed
  2  bad input, usage or environment error                               -> UserError
  3  internal error (a bug in onnxdeploy; rerun with --debug)

Library messages speak of parameters (``calib_size 0: must be positive``) and name them in
``param``; the CLI rewrites those names to its flags (``--calib-size``), so a Python caller and
a shell user each read the name they typed. A failure that produced results carries them in
``result`` (a QuantizeResult, PassesResult...), so callers and ``--json`` still see every attempt.
"""

from __future__ import annotations


class OnnxDeployError(Exception):
    """Base class of every error onnxdeploy raises on purpose."""

    exit_code = 3

    def __init__(
        self,
        message: str = "",
        *,
        param: str | tuple[str, ...] | None = None,
        result: object = None,
    ):
        super().__init__(message)
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())
        self.result = result


class UserError(OnnxDeployError):
    """The input, the usage or the environment is wrong; the message says how to fix it."""

    exit_code = 2


class CheckFailed(OnnxDeployError):
    """The work ran to the end but a verification failed (parity, accuracy, regression)."""

    exit_code = 1
