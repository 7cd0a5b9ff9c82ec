"""The ``run`` main job: recipes of small stages and the report they produce."""

from onnxdeploy.pipeline.recipe import DEMO, Recipe, load_recipe
from onnxdeploy.pipeline.plan import RunPlan, RunRequest, plan
from onnxdeploy.pipeline.run import RunResult, run, run_model
from onnxdeploy.pipeline.stages import STAGES

__all__ = [
    "DEMO",
    "STAGES",
    "Recipe",
    "RunPlan",
    "RunRequest",
    "RunResult",
    "load_recipe",
    "plan",
    "run",
    "run_model",
]
