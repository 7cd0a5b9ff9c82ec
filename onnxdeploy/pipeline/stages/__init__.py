"""Pipeline stages: each is one small function ``stage(ctx, **options) -> Summary`` registered with
what it needs and produces. A stage's keyword options are exactly what a recipe may set under its
``[[stage]]`` table; the recipe loader checks names, types and order before anything runs."""

from onnxdeploy.pipeline.stages import (  # noqa: F401  (registration)
    deploy,
    measure,
    onnx_stages,
    training,
)
from onnxdeploy.pipeline.stages.registry import STAGES, Stage

__all__ = ["STAGES", "Stage"]
