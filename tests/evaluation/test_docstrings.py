"""The `Example:` sections of the evaluation modules' docstrings run."""

import doctest

import pytest

from supcon.evaluation import calibration, config, corrupted_data, corruption_params, corruptions, inference
from supcon.evaluation import inputs, knn, metrics

MODULES = [calibration, config, corrupted_data, corruption_params, corruptions, inference, inputs, knn, metrics]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
