"""GenSCL distillation targets: (1 - w) * labels + w * teacher probabilities, per view."""

import numpy as np
import pytest
import tensorflow as tf

from supcon.training.teacher import load_teacher, with_teacher_targets


def _fake_teacher(images):
    # "Probabilities" that depend on the image: class 0 for dark images, class 1 for bright.
    bright = tf.cast(tf.reduce_mean(images, axis=[1, 2, 3]) > 127.5, tf.float32)
    return {"probabilities": tf.stack([1.0 - bright, bright, tf.zeros_like(bright)], axis=-1)}


def test_mixes_labels_and_teacher_per_view():
    views = np.zeros((2, 2, 4, 4, 3), "float32")
    views[0, 1] = 255.0  # sample 0: dark view, bright view
    labels = np.array([2, 1], "int32")
    dataset = tf.data.Dataset.from_tensors((views, labels))
    _, targets = next(iter(with_teacher_targets(dataset, _fake_teacher, num_classes=3, weight=0.25)))
    expected = np.array([
        [[0.25, 0.0, 0.75], [0.0, 0.25, 0.75]],
        [[0.25, 0.75, 0.0], [0.25, 0.75, 0.0]],
    ])
    np.testing.assert_allclose(targets.numpy(), expected, atol=1e-6)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="Received: teacher="):
        load_teacher(str(tmp_path))
    with pytest.raises(ValueError, match="Received: weight=1.5"):
        with_teacher_targets(tf.data.Dataset.range(1), _fake_teacher, num_classes=3, weight=1.5)
