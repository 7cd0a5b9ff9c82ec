import numpy as np
import pytest
import torch

from onnxdeploy.errors import UserError
from onnxdeploy.models import ZOO, get_zoo_entry, load_digits_split
from onnxdeploy.data.digits import resize_images
from onnxdeploy.models.train import evaluate, train


def test_digits_cnn_reaches_97_percent_with_its_default_recipe():
    torch.manual_seed(0)
    entry = ZOO["digits_cnn"]
    data = entry.digits()
    model = train(entry.build(), data.x_train, data.y_train, epochs=entry.epochs, lr=entry.lr)
    assert evaluate(model, data.x_val, data.y_val) >= 97.0


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_take_their_input_spec(name):
    entry = ZOO[name]
    x = torch.from_numpy(entry.digits().x_val[:3])
    assert tuple(x.shape[1:]) == entry.input_shape
    assert entry.build().eval()(x).shape == (3, 10)


def test_split_is_fixed_and_disjoint():
    a, b = load_digits_split((1, 8, 8)), load_digits_split((1, 8, 8))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert len(a.y_train) + len(a.y_val) == 1797 and len(a.y_val) == 359


def test_bilinear_resize_keeps_constants_and_scales():
    flat = np.full((2, 8, 8), 0.25, np.float32)
    np.testing.assert_allclose(resize_images(flat, 16, 16), 0.25, rtol=1e-6)
    ramp = np.tile(np.arange(8, dtype=np.float32), (1, 8, 1))
    up = resize_images(ramp, 8, 16)[0, 0]
    assert np.all(np.diff(up) >= 0) and up[0] == 0 and up[-1] == 7


def test_unknown_zoo_name_lists_the_zoo():
    with pytest.raises(UserError, match="digits_cnn"):
        get_zoo_entry("nope")
