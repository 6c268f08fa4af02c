"""`import supcon` exposes the subpackages on first use, and its docstring example runs."""

import doctest
import subprocess
import sys

import supcon


def test_docstring_example():
    result = doctest.testmod(supcon)
    assert result.attempted > 0 and result.failed == 0, result


def test_subpackages_after_a_plain_import():
    code = ("import supcon, sys; assert 'supcon.evaluation' not in sys.modules; "
            "print(supcon.models.SupConModel.__name__, supcon.evaluation.ALL_CORRUPTIONS[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["SupConModel", "gaussian_noise"]
    assert "training" in dir(supcon)


def test_unknown_attribute_is_an_attribute_error():
    try:
        supcon.nope  # noqa: B018
    except AttributeError as error:
        assert "nope" in str(error)
    else:
        raise AssertionError("supcon.nope did not raise")
