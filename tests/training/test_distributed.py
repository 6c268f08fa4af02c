"""Mirrored over 2 logical CPUs takes the same first step as one device on the same global batch.

Batch norm is synchronized across replicas (`synchronized_bn=True`), so the only difference
between the two runs is how the batch is split: the loss gathers the other replica's features, the
gradients are summed across replicas, so the step must be the same.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon import losses, models
from supcon.training import build_optimizer, build_strategy


def _one_step(strategy, images, labels):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        encoder = models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(16, 16, 3),
                                synchronized_bn=True)
        model = models.SupConModel(encoder, models.ProjectionHead(dims=(16, 8)))
        model.compile(optimizer=build_optimizer("sgd", 0.5, momentum=0.0, weight_decay=1e-4),
                      loss=losses.SupConLoss(temperature=0.5))
    before = [w.copy() for w in model.get_weights()]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    history = model.fit(dataset, epochs=1, verbose=0)
    deltas = [a - b for a, b in zip(model.get_weights(), before)]
    return history.history["loss"][0], deltas


def test_mirrored_first_step_equals_one_device(two_replica_strategy):
    # The session's shared MirroredStrategy over the 2 logical CPUs (see tests/conftest.py: a
    # second MirroredStrategy in one process can abort collectives); `build_strategy("mirrored")`
    # itself is tested in test_strategy.py.
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(8, 2, 16, 16, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3], "int32")
    loss_one, deltas_one = _one_step(build_strategy("one_device"), images, labels)
    loss_two, deltas_two = _one_step(two_replica_strategy, images, labels)
    assert loss_two == pytest.approx(loss_one, rel=1e-4)
    moved = sum(float(np.abs(d).sum()) for d in deltas_one)
    assert moved > 0
    for a, b in zip(deltas_one, deltas_two):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)
