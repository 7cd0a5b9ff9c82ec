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

from onnxdeploy.data.specs import InputSpec, specs_from_session
from onnxdeploy.runtime.sessions import create_session, provider_chain

logger = logging.getLogger(__name__)


class OrtRunner:
    """``with OrtRunner(path, provider="cpu", threads=1) as r: r.infer(feeds)``."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        provider: str = "cpu",
        threads: int = 1,
        spinning: bool = False,
        io_binding: bool = False,
        profile: bool = False,
    ):
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
        provider_chain(self.provider)  # an unknown provider is refused before the file is read
        started = time.perf_counter()
        self.session = create_session(
            self.model_path,
            provider=self.provider,
            threads=self.threads,
            spinning=self.spinning,
            profiling=self.profile,
        )
        self.create_ms = (time.perf_counter() - started) * 1000
        return self

    def __exit__(self, *exc) -> None:
        if self.profile and self.session is not None:
            self.session.end_profiling()
        self.session = None
        self._binding = None

    @property
    def inputs(self) -> list[InputSpec]:
        return specs_from_session(self.session)

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
            return functools.partial(
                self.session.run, None, feeds
            )  # no Python frame of ours per call
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
