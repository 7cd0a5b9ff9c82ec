"""The ``run`` main job: recipes of small stages and the report they produce."""

from onnxdeploy.pipeline.recipe import DEMO, Recipe, load_recipe
from onnxdeploy.pipeline.run import RunResult, run
from onnxdeploy.pipeline.stages import STAGES

__all__ = ["DEMO", "STAGES", "Recipe", "RunResult", "load_recipe", "run"]
