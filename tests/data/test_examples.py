"""Runs the `Example:` blocks of supcon.data's docstrings."""

import doctest

import pytest
import tensorflow as tf

from supcon.data import augment
from supcon.data import autoaugment
from supcon.data import mixing
from supcon.data import pipelines
from supcon.data import sources


@pytest.mark.parametrize("module", [augment, autoaugment, mixing, pipelines, sources],
                         ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    globs = {"tf": tf, **vars(module)}
    tests = [t for t in finder.find(module, globs=globs) if t.examples]
    assert tests, f"{module.__name__} has no examples"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
