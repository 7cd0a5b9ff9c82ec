"""An onnxruntime session as a context manager that runs on exactly the provider asked for.

Requesting CUDA on a machine without it, or a session that silently dropped the provider,
is a UserError (exit 2): a benchmark must never time the CPU while claiming the GPU.
"""

from __future__ import annotations

import functools
import logging
import os
import time

import numpy as np

from onnxdeploy.errors import UserError
from onnxdeploy.onnx_io import load_model

logger = logging.getLogger(__name__)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
              "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def provider_chain(provider: str) -> list[str]:
    """The provider list for a session; UserError when the provider is unknown or not installed."""
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise UserError(f"--provider '{provider}': choose from {', '.join(PROVIDERS)}")
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        hint = " (install onnxdeploy[gpu] for onnxruntime-gpu and check the CUDA driver)" if provider != "cpu" else ""
        raise UserError(f"--provider {provider}: {wanted} is not available in this onnxruntime "
                        f"({ort.__version__}; available: {', '.join(available)}){hint}")
    chain = [wanted]
    if provider == "tensorrt":
        chain.append("CUDAExecutionProvider")
    return chain + ["CPUExecutionProvider"] if provider != "cpu" else chain


class OrtRunner:
    """``with OrtRunner(path, provider="cpu", threads=1) as r: r.infer(feeds)``."""

    def __init__(self, model_path: str | os.PathLike, *, provider: str = "cpu", threads: int = 1,
                 spinning: bool = False, io_binding: bool = False, profile: bool = False):
        self.model_path = str(model_path)
        self.provider = provider
        self.threads = threads
        self.spinning = spinning
        self.io_binding = io_binding or provider in ("cuda", "tensorrt")
        self.profile = profile
        self.session = None
        self.create_ms = 0.0
        self._binding = None

    def __enter__(self) -> "OrtRunner":
        import onnxruntime as ort

        chain = provider_chain(self.provider)
        load_model(self.model_path, check=False)  # clear errors for missing / non-ONNX files
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # An idle session's spinning workers steal cores from the one being timed.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.enable_profiling = self.profile
        options.log_severity_level = 3
        started = time.perf_counter()
        try:
            self.session = ort.InferenceSession(self.model_path, options, providers=chain)
        except Exception as exc:
            raise UserError(f"{self.model_path}: onnxruntime cannot load it: {str(exc).strip().splitlines()[0][:200]}") from exc
        self.create_ms = (time.perf_counter() - started) * 1000
        active = self.session.get_providers()
        if active[0] != chain[0]:
            raise UserError(f"{self.model_path}: asked for {chain[0]} but the session runs on {active[0]}")
        return self

    def __exit__(self, *exc) -> None:
        if self.profile and self.session is not None:
            self.session.end_profiling()
        self.session = None
        self._binding = None

    @property
    def inputs(self):
        return self.session.get_inputs()

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once and return outputs as numpy arrays on the host."""
        return dict(zip(self.output_names, self.session.run(None, feeds), strict=True))

    def prepare(self, feeds: dict[str, np.ndarray]):
        """Return a zero-argument callable that runs one timed inference on ``feeds``.

        With IO binding the inputs are copied to the device once and the outputs stay
        there, so the timing covers the model, not host-device copies; the call
        synchronises so the time is the device's, not the launch's.
        """
        if not self.io_binding:
            return functools.partial(self.session.run, None, feeds)  # no Python frame of ours per call
        import onnxruntime as ort

        device = "cuda" if self.provider in ("cuda", "tensorrt") else "cpu"
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, 0))
        for name in self.output_names:
            binding.bind_output(name, device)
        self._binding = binding
        session = self.session

        def run_bound():
            binding.synchronize_inputs()
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
        return run_bound


def generated_feeds(inputs, batch: int, *, shapes: dict[str, tuple[int, ...]] | None = None, seed: int = 0,
                    model_path: str = "") -> dict[str, np.ndarray]:
    """Seeded inputs from a session's signature; dimension 0 is the batch when it is symbolic."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in inputs:
        if shapes and i.name in shapes:
            shape = tuple(shapes[i.name])
        else:
            shape = []
            for axis, dim in enumerate(i.shape):
                if isinstance(dim, int) and dim > 0:
                    shape.append(dim)  # a static batch stays as the model fixes it
                elif axis == 0:
                    shape.append(batch)
                else:
                    raise UserError(f"{model_path}: input '{i.name}' has symbolic dimension {axis} ('{dim}'); "
                                    f"give it with --shape {i.name}=" + "x".join(
                                        str(batch) if a == 0 else str(d) if isinstance(d, int) else "N"
                                        for a, d in enumerate(i.shape)))
            shape = tuple(shape)
        dtype = _ORT_TYPES.get(i.type)
        if dtype is None:
            raise UserError(f"{model_path}: input '{i.name}' has unsupported type {i.type}")
        if np.issubdtype(dtype, np.floating):
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[i.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[i.name] = rng.integers(0, 10, shape).astype(dtype)
    return feeds
