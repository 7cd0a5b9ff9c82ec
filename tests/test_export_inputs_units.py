"""Unit tests (no torch) of how export's inputs are described: ``--input NAME:DTYPE:SHAPE``,
``--dynamic NAME:AXES``, example arrays, and the InputSpecs the data layer gets from them."""

from types import SimpleNamespace

import numpy as np
import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.exporter.inputs import (
    ExportInput,
    inputs_from_arrays,
    input_specs,
    parse_dynamic,
    parse_input,
)


def test_an_input_is_name_dtype_and_shape():
    ids = parse_input("input_ids:int64:1x128")
    assert (ids.name, ids.dtype, ids.shape, ids.dynamic) == ("input_ids", np.int64, (1, 128), ())
    assert ids.to_json() == {
        "name": "input_ids",
        "dtype": "int64",
        "shape": [1, 128],
        "dynamic_axes": [],
    }


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("input_ids:int64", "expected NAME:DTYPE:SHAPE"),
        (":int64:1x128", "expected NAME:DTYPE:SHAPE"),
        ("x:float64:1x3", "dtype 'float64' is not one of"),
        ("x:float32:1xA", "1xA"),
    ],
)
def test_a_malformed_input_is_a_user_error_naming_the_option(text, fragment):
    with pytest.raises(UserError, match=fragment) as error:
        parse_input(text)
    assert error.value.params == ("inputs",)


def test_dynamic_axes_merge_sorted_and_leave_other_inputs_alone():
    ids, mask = parse_input("input_ids:int64:1x16"), parse_input("mask:int64:1x16x4")
    first = parse_dynamic(["mask:2,1", "mask:1"], [ids, mask])
    assert [i.dynamic for i in first] == [(), (1, 2)] and first[0] is ids
    assert [i.name for i in first] == ["input_ids", "mask"]  # the order given


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("other:1", "for one of the inputs (input_ids)"),
        ("input_ids", "expected NAME:AXIS"),
        ("input_ids:x", "axes must be integers"),
        ("input_ids:0", "between 1 and 1"),  # the batch is dynamic already
        ("input_ids:2", "between 1 and 1"),
    ],
)
def test_a_dynamic_axis_that_does_not_exist_is_refused(text, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_dynamic([text], [parse_input("input_ids:int64:1x16")])


def test_example_arrays_give_names_shapes_and_float32_for_float64():
    found = inputs_from_arrays(
        {"pixels": np.zeros((2, 3), np.float64), "ids": np.ones((2, 5), np.int64)}, "in.npz"
    )
    assert [(i.name, i.dtype, i.shape) for i in found] == [
        ("pixels", np.float32, (2, 3)),
        ("ids", np.int64, (2, 5)),
    ]
    assert found[0].example.dtype == np.float32
    with pytest.raises(UserError, match="in.npz: 'x' needs a leading batch axis"):
        inputs_from_arrays({"x": np.float32(1.0)}, "in.npz")
    with pytest.raises(UserError, match="in.npz: 'x' has dtype uint8"):
        inputs_from_arrays({"x": np.zeros((1, 2), np.uint8)}, "in.npz")


def test_specs_leave_the_batch_and_the_dynamic_axes_free():
    ids = ExportInput("input_ids", np.dtype(np.int64), (1, 16, 4), (2,))
    specs = input_specs(SimpleNamespace(inputs=[ids], input_shapes=[]))
    assert [(s.name, tuple(s.shape), s.dtype) for s in specs] == [
        ("input_ids", (None, 16, None), np.int64)
    ]
    floats = input_specs(SimpleNamespace(inputs=[], input_shapes=[(1, 3, 8, 8)]))
    assert len(floats) == 1 and tuple(floats[0].shape)[0] is None
    assert tuple(floats[0].shape)[1:] == (3, 8, 8)
