"""The `Example:` sections of the evaluation modules' docstrings run."""

import doctest

import pytest

from supcon.evaluation import calibration, corrupted_data, corruption_params, corruptions, inputs, knn
from supcon.evaluation import linear_eval, metrics

MODULES = [calibration, corrupted_data, corruption_params, corruptions, inputs, knn, linear_eval, metrics]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result
