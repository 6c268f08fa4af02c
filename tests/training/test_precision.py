"""Precision policy."""

import keras
import pytest

from supcon.training.precision import set_precision


def test_set_and_reset():
    try:
        assert set_precision("mixed_bfloat16").compute_dtype == "bfloat16"
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    finally:
        assert set_precision("float32").name == "float32"


def test_bad_value():
    with pytest.raises(ValueError, match="Received: precision='float16'"):
        set_precision("float16")
