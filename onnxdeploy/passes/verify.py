"""Verify a transformed model against the original on seeded random inputs, in onnxruntime."""

from __future__ import annotations

import numpy as np

from onnxdeploy.output_diff import CompareResult, compare_outputs


def verify_equivalent(
    original,
    candidate,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    batches: tuple[int, ...] = (1, 3),
    seed: int = 0,
    shapes: dict | None = None,
    model_path: str = "",
    examples: dict | None = None,
    default_dim: int | None = None,
    fixed: dict | None = None,
) -> CompareResult:
    """Compare every output of two models (paths or ModelProtos) on seeded inputs; ``atol``
    defaults to
    ``rtol`` times the largest reference magnitude, so "within 1e-5 relative" is judged against the
    output's scale, not element by element. Symbolic non-batch dims take ``shapes``, else the
    export's ``examples``, else ``default_dim``."""
    from onnxdeploy.runtime import create_session

    # compare the graphs as written, not onnxruntime's rewrites of them
    # log severity 4: a failure is ours to report once, not as onnxruntime's error lines
    ref_session = create_session(
        original, optimize=False, label=model_path or "<model>", log_severity=4
    )
    new_session = create_session(
        candidate,
        optimize=False,
        label=f"{model_path or '<model>'} (transformed)",
        log_severity=4,
    )
    references, candidates = paired_outputs(
        ref_session,
        new_session,
        batches=batches,
        seed=seed,
        shapes=shapes,
        model_path=model_path,
        examples=examples,
        default_dim=default_dim,
        fixed=fixed,
    )
    scale = max(
        (
            float(np.max(np.abs(v)))
            for r in references
            for v in r.values()
            if v.size and np.all(np.isfinite(v))
        ),
        default=1.0,
    )
    return compare_outputs(references, candidates, atol=max(atol, rtol * scale), rtol=rtol)


def paired_outputs(
    reference,
    candidate,
    *,
    batches: tuple[int, ...] = (1, 3),
    seed: int = 0,
    shapes: dict | None = None,
    model_path: str = "",
    examples: dict | None = None,
    default_dim: int | None = None,
    fixed: dict | None = None,
) -> tuple[list[dict], list[dict]]:
    """Run two sessions on the same seeded inputs, one feed per batch size (one only for a static
    batch); their outputs by the reference's output names, one dict per batch each. ``fixed``
    inputs are fed their value; the candidate gets only the inputs it takes (a frozen one is
    its constant)."""
    from onnxdeploy.data.specs import is_static, specs_from_session
    from onnxdeploy.runtime import generated_feeds
    from onnxdeploy.runtime.sessions import onnxruntime_failures

    specs = specs_from_session(reference)
    names = [o.name for o in reference.get_outputs()]
    references, candidates = [], []
    for i, batch in enumerate(batches):
        feeds = generated_feeds(
            specs,
            batch,
            shapes=shapes,
            seed=seed + i,
            model_path=model_path,
            examples=examples,
            default_dim=default_dim,
        )
        feeds.update(fixed or {})
        takes = {i.name for i in candidate.get_inputs()}
        shown = ", ".join(
            f"{k}={'x'.join(map(str, v.shape)) or 'scalar'}" for k, v in feeds.items()
        )
        # generated inputs a model cannot take (an STFT's reflect pad on 16 samples) are the
        # user's to size: exit 2 naming them and the flag, never a traceback
        what = f"onnxruntime cannot run it on generated inputs ({shown}; give --shape NAME=DIMS)"
        with onnxruntime_failures(model_path or "<model>", what):
            references.append(dict(zip(names, reference.run(None, feeds))))
            candidates.append(
                dict(
                    zip(names, candidate.run(names, {k: v for k, v in feeds.items() if k in takes}))
                )
            )
        if all(is_static(s.shape[0]) for s in specs if s.shape):
            break  # a static batch: one size is all there is
    return references, candidates
