"""What a caller may ask of quantize: every setting refused by name before any work, and the quality
floor's rejection reasons."""

import math

import pytest

from onnxdeploy.errors import UserError
from onnxdeploy.quantize.request import BLOCK_SIZES, Acceptance, QuantizeConfig


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"method": "kl"}, "method"),
        ({"quant_format": "QDQ"}, "quant_format"),
        ({"activation_type": "int16"}, "activation_type"),
        ({"weight_type": "int4"}, "weight_type"),
        ({"calib_size": 0}, "calib_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"weights": "int2"}, "weights"),
        ({"block_size": 48}, "block_size"),
        ({"weights": "int4", "method": "minmax"}, "method"),
        ({"calib_memory_mb": 0}, "calib_memory_mb"),
        ({"calib_memory_mb": math.inf}, "calib_memory_mb"),
        ({"percentile": 0}, "percentile"),
        ({"percentile": 100.5}, "percentile"),
        ({"percentile": math.nan}, "percentile"),
    ],
)
def test_a_config_names_the_setting_it_refuses(kwargs, param):
    with pytest.raises(UserError) as caught:
        QuantizeConfig(**kwargs)
    assert param in caught.value.params


def test_a_config_normalizes_what_it_keeps():
    config = QuantizeConfig(exclude=["Conv_0", "MatMul"], state={"stateN": "state"})
    assert config.exclude == ("Conv_0", "MatMul") and config.state == (("stateN", "state"),)
    assert config.activation_type is None  # the CPU decides
    assert all(QuantizeConfig(weights="int4", block_size=b).block_size == b for b in BLOCK_SIZES)
    assert QuantizeConfig(percentile=100).percentile == 100


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"min_agreement": 101}, "min_agreement"),
        ({"min_agreement": math.nan}, "min_agreement"),
        ({"max_kl": -0.1}, "max_kl"),
        ({"max_drop": -1}, "max_drop"),
        ({"max_drop": math.inf}, "max_drop"),
        ({"target_batch": 0}, "target_batch"),
        ({"target_threads": 0}, "target_threads"),
        ({"min_snr_db": math.inf}, "min_snr_db"),
    ],
)
def test_an_acceptance_names_the_setting_it_refuses(kwargs, param):
    with pytest.raises(UserError) as caught:
        Acceptance(**kwargs)
    assert param in caught.value.params


def test_a_metric_reference_that_does_not_import_is_refused_at_once(tmp_path):
    with pytest.raises(UserError):
        Acceptance(metric=f"{tmp_path / 'missing.py'}:score")


def test_the_quality_floor_says_which_bound_failed():
    acceptance = Acceptance(max_drop=1.0, min_snr_db=20.0)
    assert acceptance.rejection(0.5, 25.0) is None
    assert acceptance.rejection(1.0, 20.0) is None  # both bounds inclusive
    assert acceptance.rejection(1.5, 25.0) == "drop 1.50 points > max 1"
    assert acceptance.rejection(0.5, 19.0) == "SNR 19.0 dB < min 20 dB"
    assert acceptance.rejection(math.nan, 30.0).startswith("drop nan")  # never passes on NaN
    assert acceptance.rejection(0.0, math.nan).startswith("SNR nan")
    # the floor in force (a default for SNR-scored models) overrides min_snr_db
    assert acceptance.rejection(0.0, 25.0, snr_floor=30.0) == "SNR 25.0 dB < min 30 dB"
    assert Acceptance().rejection(0.0, -5.0) is None  # no SNR floor asked for
