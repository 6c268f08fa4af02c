"""Warmup + decay schedules against closed forms (SimCLR warmup, SGDR cosine, step decays)."""

import math

import keras
import numpy as np
import pytest

from supcon.training.schedules import ConstantSchedule, LinearWarmup, build_schedule, scaled_learning_rate


def _values(schedule, steps):
    return np.array([float(schedule(t)) for t in steps])


def test_linear_scaling_rule():
    assert scaled_learning_rate(0.4, 6144) == pytest.approx(9.6)  # SupCon ImageNet: 0.4 per 256


def test_warmup_then_cosine():
    s = build_schedule(0.1, batch_size=512, steps_per_epoch=10, epochs=10, warmup_epochs=2)
    peak = 0.2
    steps = [0, 10, 20, 60, 99, 100]
    expected = [0.0, peak / 2, peak, peak * 0.5 * (1 + math.cos(math.pi * 40 / 80)),
                peak * 0.5 * (1 + math.cos(math.pi * 79 / 80)), 0.0]
    np.testing.assert_allclose(_values(s, steps), expected, rtol=1e-5, atol=1e-7)


def test_exponential_is_staircase():
    s = build_schedule(0.256, batch_size=256, steps_per_epoch=5, epochs=10, schedule="exponential",
                       decay_rate=0.5, epochs_per_decay=2)
    np.testing.assert_allclose(_values(s, [0, 9, 10, 25]), [0.256, 0.256, 0.128, 0.064], rtol=1e-6)


def test_piecewise_boundaries_in_epochs():
    s = build_schedule(0.256, batch_size=256, steps_per_epoch=10, epochs=10, warmup_epochs=1,
                       schedule="piecewise", boundaries=(5, 8))
    np.testing.assert_allclose(_values(s, [5, 10, 49, 51, 79, 81]),
                               [0.128, 0.256, 0.256, 0.0256, 0.0256, 0.00256], rtol=1e-5)


def test_constant():
    s = build_schedule(0.256, batch_size=128, steps_per_epoch=10, epochs=3, schedule="constant")
    np.testing.assert_allclose(_values(s, [0, 29]), [0.128, 0.128], rtol=1e-6)


def test_round_trip():
    s = build_schedule(0.1, batch_size=256, steps_per_epoch=10, epochs=5, warmup_epochs=1,
                       schedule="piecewise", boundaries=(3,))
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(restored, LinearWarmup)
    np.testing.assert_allclose(_values(restored, range(50)), _values(s, range(50)))
    c = ConstantSchedule.from_config(ConstantSchedule(0.3).get_config())
    assert float(c(7)) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "kwargs,name",
    [({"schedule": "linear"}, "schedule"), ({"warmup_epochs": 5}, "warmup_epochs"),
     ({"learning_rate": 0.0}, "learning_rate"), ({"schedule": "piecewise", "boundaries": (0.5,)},
                                                 "boundaries")],
)
def test_bad_arguments(kwargs, name):
    args = dict(learning_rate=0.1, batch_size=256, steps_per_epoch=10, epochs=5, warmup_epochs=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"Received: {name}="):
        build_schedule(**args)


def test_docstring_examples():
    assert float(ConstantSchedule(0.5)(10)) == 0.5
    s = LinearWarmup(ConstantSchedule(1.0), warmup_steps=4)
    assert [round(float(s(t)), 2) for t in (0, 2, 4, 9)] == [0.0, 0.5, 1.0, 1.0]
