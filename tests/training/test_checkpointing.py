"""Checkpoints: round trip with optimizer state, fallback past a damaged newest one, NaN guard."""

import glob
import os

import keras
import numpy as np
import pytest

from supcon.training.checkpointing import (
    CheckpointCallback,
    NonFiniteLossError,
    NonFiniteLossGuard,
    RunCheckpointer,
)
from supcon.training.optimizers import build_optimizer


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
         keras.layers.Dense(1)]
    )
    model.compile(optimizer=build_optimizer("lars", 0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _fit(model, callbacks=(), y=None, epochs=1):
    x = np.linspace(0, 1, 24, dtype="float32").reshape(8, 3)
    y = np.ones((8, 1), "float32") if y is None else y
    model.fit(x, y, batch_size=2, epochs=epochs, verbose=0, shuffle=False, callbacks=list(callbacks))


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


def test_saves_every_n_steps_and_restores_optimizer_state(tmp_path):
    model = _model()
    ckpt = RunCheckpointer(str(tmp_path), model, model.optimizer, max_to_keep=10)
    _fit(model, [CheckpointCallback(ckpt, every_steps=3)])
    assert [int(p.rsplit("-", 1)[1]) for p in ckpt.manager.checkpoints] == [3, 4]
    other = _model()
    assert RunCheckpointer(str(tmp_path), other, other.optimizer).restore_latest() == 4
    assert _same(model, other)
    for a, b in zip(model.optimizer.variables, other.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_damaged_newest_falls_back_with_warning(tmp_path, caplog):
    model = _model()
    ckpt = RunCheckpointer(str(tmp_path), model, model.optimizer)
    _fit(model)
    ckpt.save()
    saved = [w.copy() for w in model.get_weights()]
    _fit(model)
    newest = ckpt.save()
    with open(glob.glob(newest + ".data-*")[0], "r+b") as f:  # truncate the newest checkpoint
        f.truncate(8)
    other = _model()
    with caplog.at_level("WARNING"):
        step = RunCheckpointer(str(tmp_path), other, other.optimizer).restore_latest()
    assert step == 4
    assert "cannot be read" in caplog.text and "falling back" in caplog.text
    for a, b in zip(saved, other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_kill_during_save_keeps_previous_checkpoint(tmp_path):
    # A save killed before the state file is renamed leaves only stray data files behind.
    model = _model()
    ckpt = RunCheckpointer(str(tmp_path), model, model.optimizer)
    _fit(model)
    ckpt.save()
    open(os.path.join(tmp_path, "ckpt-8_temp"), "w").write("partial")
    other = _model()
    assert RunCheckpointer(str(tmp_path), other, other.optimizer).restore_latest() == 4


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    model = _model()
    ckpt = RunCheckpointer(str(tmp_path), model, model.optimizer, max_to_keep=10)
    y = np.ones((8, 1), "float32")
    y[5] = np.nan  # batch 2 (steps 1-based: step 3) has a NaN target
    guard = NonFiniteLossGuard(model.optimizer, hint="Try a lower --learning_rate.",
                               checkpoint_dir=str(tmp_path))
    with pytest.raises(NonFiniteLossError, match=r"at step 3 .*kept in .*lower --learning_rate"):
        _fit(model, [guard, CheckpointCallback(ckpt, every_steps=1)], y=y)
    assert [int(p.rsplit("-", 1)[1]) for p in ckpt.manager.checkpoints] == [1, 2]


def test_fresh_directory_restores_nothing(tmp_path):
    model = _model()
    assert RunCheckpointer(str(tmp_path), model, model.optimizer).restore_latest() is None
