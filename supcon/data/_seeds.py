"""Stateless per-element seeds, and the adapter that feeds them to Keras layers.

Every random draw in `supcon.data` is a stateless TF op whose seed is derived from
`(seed, element index, view index)`. That makes a pipeline reproducible even with
parallel `tf.data` maps, where a stateful generator (a `keras.random.SeedGenerator`
variable, `tf.random.Generator`) would hand out its numbers in whatever order the
threads happen to run.
"""

import keras
import tensorflow as tf


def fold_in(seed, *data):
    """Derives a new stateless seed from `seed` and integers `data` (in order).

    Args:
        seed: int64/int32 tensor of shape `[2]`.
        *data: scalar integers or int tensors.

    Returns:
        int64 tensor of shape `[2]`.
    """
    seed = tf.cast(seed, tf.int64)
    for value in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int64))
    return seed


def root_seed(seed):
    """The `[2]` int64 stateless seed of a Python integer seed."""
    return tf.constant([seed, 0x5C0], dtype=tf.int64)


class SeedStream(keras.random.SeedGenerator):
    """A `keras.random.SeedGenerator` whose draws are stateless seeds derived from a tensor.

    Keras preprocessing layers accept `seed=` in `get_random_transformation` and draw
    from it with `keras.random.*`, which calls `seed.next()` once per draw. Their own
    `SeedGenerator` keeps its state in a variable, so under a parallel `tf.data` map
    the order of draws (and hence the augmentation of an image) depends on thread
    scheduling. This stream instead returns `fold_in(seed, k)` for the k-th draw; `k`
    is counted while the map function is traced, so the same element always gets the
    same numbers.

    No state variable is created (the parent constructor is deliberately not called).

    Args:
        seed: int tensor of shape `[2]`, e.g. from `fold_in`.
    """

    def __init__(self, seed):  # pylint: disable=super-init-not-called
        self._base = tf.cast(seed, tf.int64)
        self._count = 0

    def next(self, ordered=True):
        del ordered
        self._count += 1
        return fold_in(self._base, self._count)

    def get_config(self):
        raise NotImplementedError("SeedStream lives inside a traced tf.data function only.")
