"""Which nodes did onnxruntime place on the CPU although a GPU provider was asked for?

Read from onnxruntime's own profile of one run: each node event names the provider that
executed it. Shape ops on the CPU are normal (and cheap); compute ops there mean copies
between host and device on every run, which the user needs to know.
"""

from __future__ import annotations

import json
import os

CHEAP_ON_CPU = {
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Reshape",
    "Cast",
    "ConstantOfShape",
    "Range",
    "Slice",
    "Expand",
    "Equal",
    "Where",
}


def nodes_on_cpu(model_path: str, provider: str, feeds) -> list[str]:
    """Names (op type in brackets) of the nodes the profile shows on CPUExecutionProvider."""
    from onnxdeploy.runtime import create_session

    session = create_session(model_path, provider=provider, threads=None, profiling=True)
    session.run(None, feeds)
    profile = session.end_profiling()
    try:
        with open(profile, encoding="utf-8") as f:
            events = json.load(f)
    finally:
        os.remove(profile)
    found = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and args.get("provider") == "CPUExecutionProvider":
            name = event.get("name", "").removesuffix("_kernel_time")
            found[name] = args.get("op_name", "?")
    return sorted(f"{name} [{op}]" for name, op in found.items() if op not in CHEAP_ON_CPU)
