"""Unit tests of ``pipeline.plan``: the recipe ``run MODEL`` builds for each kind of model and
data, read as data (nothing runs): which stages, in which order, with which options, and the
notes that say why a stage was left out; the request's own checks. Torch-free: a zoo name and a
``file.py:factory`` are planned without building them."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxdeploy.errors import UserError
from onnxdeploy.pipeline.plan import RunRequest, _labelled, plan


# a PyTorch model with labelled data: pruned by compress, its zero channels removed, evaluated
PRUNED_AND_EVALUATED = [
    "compress",
    "export",
    "prune-channels",
    "quantize",
    "evaluate",
    "bench",
    "select",
    "package",
]


def _names(built) -> list[str]:
    return [name for name, _ in built.recipe.stages]


def _options(built) -> dict[str, dict]:
    return dict(built.recipe.stages)


def _onnx(path, *, decoder=False) -> str:
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    if decoder:
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "S"]),
            helper.make_tensor_value_info(
                "past_key_values.0.key", TensorProto.FLOAT, ["B", 1, "P", 2]
            ),
        ]
        nodes = [helper.make_node("Identity", ["past_key_values.0.key"], ["present.0.key"])]
        outputs = [helper.make_tensor_value_info("present.0.key", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return str(path)


def _npz(path, *, labels: bool) -> str:
    arrays = {"x_val": np.zeros((4, 4), np.float32), "x_train": np.zeros((4, 4), np.float32)}
    if labels:
        arrays |= {"y_val": np.zeros(4, np.int64), "y_train": np.zeros(4, np.int64)}
    np.savez(path, **arrays)
    return str(path)


def test_an_untrained_zoo_model_on_its_digits_is_trained_pruned_and_evaluated():
    built = plan(RunRequest("digits_cnn", target_batch=8, target_threads=2))
    assert _names(built) == ["train", *PRUNED_AND_EVALUATED]
    options = _options(built)
    assert options["compress"] == {"target_batch": 8, "target_threads": 2}
    assert options["quantize"]["variants"] and options["quantize"]["target_batch"] == 8
    assert options["bench"] == {"batch": [8], "threads": 2}
    assert options["select"] == {"max_drop": RunRequest.max_drop, "batch": 8}
    assert built.recipe.data == "digits" and built.notes == ()


def test_a_zoo_model_with_a_checkpoint_is_not_trained_again(tmp_path):
    built = plan(RunRequest("digits_cnn", checkpoint=str(tmp_path / "c.pt")))
    assert "train" not in _names(built) and _names(built)[0] == "compress"


def test_a_zoo_model_without_labels_or_a_checkpoint_cannot_be_trained(tmp_path):
    with pytest.raises(UserError, match="built untrained; give --checkpoint, or --data with"):
        plan(RunRequest("digits_cnn", data=_npz(tmp_path / "d.npz", labels=False)))


def test_an_onnx_file_skips_the_pytorch_stages_and_without_labels_says_so(tmp_path):
    built = plan(RunRequest(_onnx(tmp_path / "m.onnx"), target_threads=1))
    assert _names(built) == ["export", "prune-channels", "quantize", "bench", "select", "package"]
    assert built.recipe.data == "random"
    assert len(built.notes) == 1 and "accuracy on real inputs is unknown" in built.notes[0]


def test_labelled_data_adds_the_evaluation_and_a_latency_target_goes_to_compress_and_select(
    tmp_path,
):
    data = _npz(tmp_path / "d.npz", labels=True)
    metric = tmp_path / "m.py"
    metric.write_text("def f(outputs, data):\n    return 1.0\n")
    built = plan(
        RunRequest(
            "tests/tiny_models.py:two_layer",
            data=data,
            input_shape="1x3x8x8",
            target_latency=0.5,
            metric=f"{metric}:f",
            target_threads=1,
        )
    )
    assert _names(built) == PRUNED_AND_EVALUATED
    options = _options(built)
    assert options["compress"]["target_latency"] == 0.5 == options["select"]["target_latency"]
    for stage in ("compress", "quantize", "select"):  # every judging stage uses the user's metric
        assert options[stage]["metric"] == f"{metric}:f"


def test_a_factory_without_data_has_no_pruned_variants_and_says_why():
    built = plan(RunRequest("tests/tiny_models.py:two_layer", input_shape="1x3x8x8"))
    assert "compress" not in _names(built) and "prune-channels" not in _names(built)
    assert any("no pruned variants" in note for note in built.notes)


def test_a_factory_needs_its_input_shape_and_an_unknown_name_lists_the_zoo(tmp_path):
    with pytest.raises(UserError, match="give --input-shape"):
        plan(RunRequest("tests/tiny_models.py:two_layer"))
    with pytest.raises(UserError, match="digits_cnn"):
        plan(RunRequest("no_such_model"))
    with pytest.raises(UserError, match="no such file"):
        plan(RunRequest(str(tmp_path / "missing.onnx")))


def test_a_decoder_graph_gets_the_language_model_recipe(tmp_path):
    model = _onnx(tmp_path / "d.onnx", decoder=True)
    built = plan(RunRequest(model, target_batch=2, target_threads=1, package_target="arm64"))
    assert _names(built) == ["export", "quantize", "bench", "select", "package"]
    options = _options(built)
    assert options["quantize"] == {"target_batch": 2, "target_threads": 1}
    assert options["package"] == {"target": "arm64"}
    assert "next-token agreement" in built.notes[0] and "give --data" in built.notes[0]
    (tmp_path / "m.py").write_text("def f(outputs, data):\n    return 1.0\n")
    with pytest.raises(UserError, match="metric: does not apply to") as caught:
        plan(RunRequest(model, metric=f"{tmp_path / 'm.py'}:f"))
    assert caught.value.params == ("metric",)


@pytest.mark.parametrize(
    "kwargs, fragment, param",
    [
        ({"target_latency": 1.0}, "target_latency 1.0: a fraction", "target_latency"),
        ({"target_latency": float("nan")}, "target_latency nan", "target_latency"),
        ({"seed": -1}, "seed -1: must not be negative", "seed"),
        ({"max_drop": -2.0}, "max_drop", "max_drop"),
        ({"target_batch": 0}, "target_batch", "target_batch"),
    ],
)
def test_a_request_is_checked_when_made(kwargs, fragment, param):
    with pytest.raises(UserError, match=fragment) as caught:
        RunRequest("digits_cnn", **kwargs)
    assert param in caught.value.params


def test_labels_are_read_from_the_archives_listing(tmp_path):
    assert _labelled("digits") and not _labelled("random")
    assert _labelled(_npz(tmp_path / "l.npz", labels=True))
    assert not _labelled(_npz(tmp_path / "u.npz", labels=False))
    (tmp_path / "bad.npz").write_text("not a zip")
    assert not _labelled(str(tmp_path / "bad.npz"))  # the data layer names it when loaded


def test_the_plan_round_trips_through_its_recipe_file(tmp_path):
    from onnxdeploy.pipeline.recipe import load_recipe, to_toml

    built = plan(RunRequest(_onnx(tmp_path / "m.onnx"), target_threads=1, seed=3))
    path = tmp_path / "recipe.toml"
    path.write_text(to_toml(built.recipe))
    again = load_recipe(path)
    assert again.stages == built.recipe.stages and again.seed == 3
    assert again.model == str((tmp_path / "m.onnx").resolve())
