"""Runs the `Example:` sections of the supcon.models docstrings (STYLE.md: examples that ran)."""

import doctest

import keras
import pytest

from supcon.models import cross_entropy_model
from supcon.models import export
from supcon.models import heads
from supcon.models import linear_classifier
from supcon.models import resnet_encoder
from supcon.models import supcon_model


@pytest.mark.parametrize(
    "module", [resnet_encoder, heads, supcon_model, cross_entropy_model, linear_classifier, export], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    keras.utils.set_random_seed(0)
    result = doctest.testmod(module, extraglobs={"keras": keras}, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result
