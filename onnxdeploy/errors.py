"""Typed errors whose class decides the process exit code.

Exit codes shared by every command:
  0  success
  1  the command ran but a check failed (parity, accuracy, regression)   -> CheckFailed
  2  bad input, usage or environment error                               -> UserError
  3  internal error (a bug in onnxdeploy; rerun with --debug)
"""


class OnnxDeployError(Exception):
    """Base class of every error onnxdeploy raises on purpose."""

    exit_code = 3


class UserError(OnnxDeployError):
    """The input, the usage or the environment is wrong; the message says how to fix it."""

    exit_code = 2


class CheckFailed(OnnxDeployError):
    """The work ran to the end but a verification failed (parity, accuracy, regression)."""

    exit_code = 1
