"""Test-wide setup.

Splits the host CPU into two logical devices before TensorFlow initializes, so
tests can run `tf.distribute.MirroredStrategy` with two replicas on any machine
(the foundation issue's cross-replica tests, the data sharding tests, ...).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
except RuntimeError:  # Already initialized (e.g. by a plugin); tests needing 2 devices skip.
    pass

LOGICAL_CPUS = [d.name for d in tf.config.list_logical_devices("CPU")]

import pytest  # noqa: E402

_TWO_REPLICA_STRATEGY = []


@pytest.fixture(scope="session")
def two_replica_strategy():
    """One MirroredStrategy over the 2 logical CPUs, shared by the whole session.

    Creating several MirroredStrategy objects in one process made collective
    ops of a later strategy abort ("Collective instance N expected type ...")
    in TF 2.21, so tests share this one.
    """
    if len(LOGICAL_CPUS) < 2:
        pytest.skip("needs 2 logical CPU devices")
    if not _TWO_REPLICA_STRATEGY:
        _TWO_REPLICA_STRATEGY.append(tf.distribute.MirroredStrategy(LOGICAL_CPUS[:2]))
    return _TWO_REPLICA_STRATEGY[0]
