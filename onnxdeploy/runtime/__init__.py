"""The one onnxruntime layer: the session factory, feeds generated or checked against a signature,
batched inference, and the runner that timing builds on (torch-free)."""

from onnxdeploy.runtime.feeds import check_feeds, feed_shape, generated_feeds
from onnxdeploy.runtime.inference import first_output, onnx_accuracy, run_batched
from onnxdeploy.runtime.runner import OrtRunner
from onnxdeploy.runtime.sessions import (
    PROVIDERS,
    create_session,
    default_threads,
    provider_chain,
    run_checked,
)

__all__ = [
    "run_checked",
    "PROVIDERS",
    "OrtRunner",
    "check_feeds",
    "create_session",
    "default_threads",
    "feed_shape",
    "first_output",
    "generated_feeds",
    "onnx_accuracy",
    "provider_chain",
    "run_batched",
]
