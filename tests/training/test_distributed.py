"""Mirrored over 2 logical CPUs takes the same first step as one device on the same global batch.

Batch norm is synchronized across replicas (`synchronized_bn=True`), so the only difference
between the two runs is how the batch is split: the loss gathers the other replica's features, the
gradients are summed across replicas, so the step must be the same. Device augmentation
(`--augment_on=device`) runs in each replica's step, seeded by its replica id.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon import data, losses, models
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


def _fit_with_device_augmentation(strategy, images, labels, augmentation, steps=2):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        encoder = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
                                    keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()])
        model = models.SupConModel(encoder, models.ProjectionHead(dims=(8,)))
        model.compile(optimizer=build_optimizer("sgd", 0.5, momentum=0.0, weight_decay=1e-4),
                      loss=losses.SupConLoss(temperature=0.5))
        model.train_augmentation = augmentation
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8).repeat()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return model


def test_device_augmentation_under_mirrored_is_per_replica_and_deterministic(two_replica_strategy):
    # `--augment_on=device` under MirroredStrategy: each replica augments its half of the
    # global batch inside the step, seeded by (seed, step, replica id).
    strategy = two_replica_strategy
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(16, 2, 16, 16, 3)).astype("float32")
    labels = np.arange(16, dtype="int32") % 4
    augmentation = data.DeviceAugmentation("simaugment", 16, seed=0, blur="on")
    model = _fit_with_device_augmentation(strategy, images, labels, augmentation)
    assert int(model.optimizer.iterations.numpy()) == 2
    again = _fit_with_device_augmentation(strategy, images, labels, augmentation)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    plain = _fit_with_device_augmentation(strategy, images, labels, None)  # It did augment.
    assert any(not np.allclose(a, b) for a, b in zip(model.get_weights(), plain.get_weights()))

    # The step's augmentation in each replica is that of its replica id (and the step).
    views = tf.constant(images[:4])
    per_replica = strategy.experimental_local_results(
        strategy.run(model._augment, args=(views,)))
    step = model.optimizer.iterations
    for replica, out in enumerate(per_replica):
        np.testing.assert_array_equal(
            out.numpy(), augmentation(views, step=step, replica=replica).numpy())
    assert not np.allclose(per_replica[0].numpy(), per_replica[1].numpy())
    assert not np.allclose(per_replica[0].numpy(), images[:4])
