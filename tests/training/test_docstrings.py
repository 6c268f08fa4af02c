"""The `Example:` sections of the training modules' docstrings run."""

import doctest

import pytest

from supcon.training import checkpointing, config, lars, linear_stage, optimizers, precision, schedules, strategy


@pytest.mark.parametrize("module", [checkpointing, config, lars, linear_stage, optimizers, precision, schedules, strategy],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
