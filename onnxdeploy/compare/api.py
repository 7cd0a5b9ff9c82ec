"""``compare``: run a reference and a candidate on the same inputs, compare every output, and with
``layerwise`` every tensor they share, each candidate node fed the reference's own inputs."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from onnxdeploy.compare.graph import GraphFacts, graph_facts
from onnxdeploy.compare.metrics import TensorDiff, Tolerance, not_comparable, tensor_diff
from onnxdeploy.compare.request import DEFAULT_TOLERANCE, CompareRequest, candidate_kind
from onnxdeploy.exporter.source import is_onnx
from onnxdeploy.compare.result import CompareReport
from onnxdeploy.compare.store import TensorStore
from onnxdeploy.compare.sweep import candidate_sweep, reference_sweep
from onnxdeploy.data.feeds import FeedSequence, is_feed_file, load_feeds, require_feeds
from onnxdeploy.errors import CheckFailed, UserError
from onnxdeploy.runtime.inference import run_feeds
from onnxdeploy.progress import silent

logger = logging.getLogger(__name__)


def _feeds(request: CompareRequest, session, graph) -> dict[str, np.ndarray]:
    from onnxdeploy.data.readers import read_array_file
    from onnxdeploy.data.specs import specs_from_session
    from onnxdeploy.data.validation import check_arrays
    from onnxdeploy.runtime import generated_feeds

    specs = specs_from_session(session)
    if request.inputs and is_feed_file(request.inputs):  # whole feeds: each run as given
        return load_feeds(request.inputs, specs, request.state)
    require_feeds(request.state, None, request.inputs or "generated inputs")  # not a feed file
    if request.inputs:
        arrays = read_array_file(Path(request.inputs), specs)
        check_arrays(arrays, specs, request.inputs, whole_batch=True)  # one run: batch 0 refused
        return arrays
    from onnxdeploy.generate.signature import example_shapes

    # a decoder's past, new tokens and mask must agree: its shapes come together, not dim by dim
    shapes = request.shapes or example_shapes(graph, batch=request.batch)
    return generated_feeds(
        session,
        request.batch,
        shapes=shapes,
        seed=request.seed,
        model_path=request.candidate,
    )


def output_diffs(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], tolerance: Tolerance
) -> tuple[TensorDiff, ...]:
    """Per output by name; by position where the names differ but the counts agree."""
    if set(reference) != set(candidate) and len(reference) == len(candidate):
        pairs = list(zip(reference, candidate))
    else:
        pairs = [(name, name) for name in reference]
    found = []
    for ref_name, cand_name in pairs:
        if cand_name not in candidate:
            found.append(not_comparable(ref_name, "missing from the candidate"))
            continue
        label = ref_name if ref_name == cand_name else f"{ref_name} / {cand_name}"
        found.append(
            tensor_diff(label, reference[ref_name], candidate[cand_name], tolerance, top1=True)
        )
    return tuple(found)


def _run_onnx(path: str, feeds, provider: str = "cpu", threads: int = 1) -> dict[str, np.ndarray]:
    from onnxdeploy.data.specs import specs_from_session
    from onnxdeploy.data.validation import check_arrays
    from onnxdeploy.runtime import create_session

    session = create_session(path, provider=provider, threads=threads, label=path)
    try:  # the data layer's one check of arrays against a model's inputs
        specs = specs_from_session(session)
        origin = f"{path}: the candidate's inputs"
        for feed in feeds.feeds if isinstance(feeds, FeedSequence) else (feeds,):
            check_arrays(feed, specs, origin, whole_batch=True, finite=False)
    except UserError as exc:
        raise UserError(f"{exc}; compare two versions of one model") from exc
    return run_feeds(session, feeds, path)


def compare(request: CompareRequest, *, progress: Callable[[str], None] = silent) -> CompareReport:
    """Compare ``request.candidate`` with ``request.reference``; CheckFailed (carrying the report)
    when an output is past the tolerance."""
    report = compare_report(request, progress=progress)
    if not report.passed:
        raise CheckFailed(f"{request.candidate}: {report.verdict()}", result=report)
    return report


def compare_report(
    request: CompareRequest, *, progress: Callable[[str], None] = silent
) -> CompareReport:
    """The comparison, whether or not it passes."""
    from onnxdeploy.runtime import create_session

    started = time.perf_counter()
    cand = graph_facts(request.candidate)
    kind = candidate_kind(cand.model)
    tolerance = request.tolerance or DEFAULT_TOLERANCE[kind]
    session = create_session(
        request.candidate,
        provider=request.provider,
        threads=request.threads,
        label=request.candidate,
    )
    feeds = _feeds(request, session, cand.model.graph)
    candidate_out = run_feeds(session, feeds, request.candidate)
    del session
    every_feed = feeds  # the reference runs what the candidate ran: every feed
    if isinstance(feeds, FeedSequence):
        if not is_onnx(request.reference):
            raise UserError(
                f"{request.inputs}: a feed file compares two ONNX models; a PyTorch reference "
                "takes one batch (give --input an .npz of arrays)"
            )
        if request.layerwise:
            progress(f"layer-wise on the first of {len(feeds)} feeds")
        feeds = dict(feeds.feeds[0])  # layer-wise: one feed
    store = TensorStore(request.budget_bytes())
    try:
        if is_onnx(request.reference):
            progress(f"running the reference {request.reference}")
            reference_out = _run_onnx(request.reference, every_feed, threads=request.threads)
            nodes, matched = (), 0
            if request.layerwise:
                nodes, matched = _layerwise_onnx(request, cand, feeds, store, tolerance, progress)
        else:
            from onnxdeploy.compare.torch_ref import torch_reference

            reference_out, scopes = torch_reference(
                request, cand, feeds, store, hooks=request.layerwise
            )
            nodes, matched = (), 0
            if request.layerwise:
                progress(f"comparing {len(scopes)} module outputs")
                nodes = tuple(
                    candidate_sweep(
                        cand,
                        store,
                        set(),
                        tolerance,
                        compare=set(scopes),
                        slice_nodes=request.slice_nodes,
                        threads=request.threads,
                        modules=scopes,
                        feeds=feeds,
                        provider=request.provider,
                    )
                )
                matched = len(scopes)
        return CompareReport(
            reference=request.reference,
            candidate=request.candidate,
            kind=kind,
            provider=request.provider,
            tolerance=tolerance,
            outputs=output_diffs(reference_out, candidate_out, tolerance),
            nodes=tuple(nodes),
            matched=matched,
            top_k=request.top_k,
            layerwise=request.layerwise,
            peak_ram_mb=store.peak_ram_bytes / 2**20,
            spilled_mb=store.spilled_bytes / 2**20,
            seconds=time.perf_counter() - started,
        )
    finally:
        store.close()


def shared_tensors(ref: GraphFacts, cand: GraphFacts) -> set[str]:
    """Activations both graphs name alike, of a float type in both and no different known shape."""
    float_types = {1, 10, 11, 16}  # float, float16, double, bfloat16
    shared = set()
    for name in ref.tensors() & cand.tensors():
        if ref.types.get(name, 1) not in float_types or cand.types.get(name, 1) not in float_types:
            continue
        a, b = ref.shapes.get(name), cand.shapes.get(name)
        if (
            a is not None
            and b is not None
            and (
                len(a) != len(b)
                or any(isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(a, b))
            )
        ):
            continue  # a pruned layer: compared at the outputs only
        shared.add(name)
    return shared


def _layerwise_onnx(request, cand, feeds, store, tolerance, progress):
    ref = graph_facts(request.reference)
    shared = shared_tensors(ref, cand)
    progress(
        f"layer-wise: {len(shared)} tensors shared by both graphs; running the reference in slices"
    )
    reference_sweep(
        ref, feeds, shared, store, slice_nodes=request.slice_nodes, threads=request.threads
    )
    progress("running the candidate node by node on the reference's tensors")
    nodes = candidate_sweep(
        cand,
        store,
        shared,
        tolerance,
        feeds=feeds,
        slice_nodes=request.slice_nodes,
        threads=request.threads,
        provider=request.provider,
    )
    return tuple(nodes), len(shared)
