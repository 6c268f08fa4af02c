"""Tests for supcon.data.pipeline: multi-view training batches, eval batches, sharding."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from supcon import data
from tests.data._helpers import TINY_TFDS_NAME

try:
    from tests.conftest import LOGICAL_CPUS
except ImportError:  # pragma: no cover
    LOGICAL_CPUS = [d.name for d in tf.config.list_logical_devices("CPU")]


def _take(dataset, count):
    return [tuple(x.numpy() for x in element) for element in dataset.take(count)]


@pytest.fixture(scope="module")
def digits_train():
    return data.load("digits", "train")


def test_training_batches_shapes_ranges_and_determinism(digits_train):
    def build(seed):
        return data.pipeline(digits_train, batch_size=8, training=True, seed=seed, views=3)

    first = _take(build(0), 2)
    views, labels = first[0]
    assert views.shape == (8, 3, 32, 32, 3) and views.dtype == np.float32
    assert labels.shape == (8,) and labels.dtype == np.int32
    assert views.min() >= 0.0 and views.max() <= 255.0
    assert not np.allclose(views[:, 0], views[:, 1])
    for (a_views, a_labels), (b_views, b_labels) in zip(first, _take(build(0), 2)):
        np.testing.assert_array_equal(a_views, b_views)
        np.testing.assert_array_equal(a_labels, b_labels)
    other_views, _ = _take(build(1), 1)[0]
    assert not np.allclose(other_views, views)


def test_each_iteration_reshuffles(digits_train):
    dataset = data.pipeline(digits_train, batch_size=16, training=True, augmentation="none")
    first_epoch = _take(dataset, 1)[0][1]
    second_epoch = _take(dataset, 1)[0][1]
    assert not np.array_equal(first_epoch, second_epoch)


def test_training_drops_the_remainder_and_eval_keeps_it(digits_train):
    train = data.pipeline(digits_train, batch_size=100, training=True, augmentation="none")
    sizes = [labels.shape[0] for _, labels in train]
    assert sizes == [100] * 14  # 1437 = 14 * 100 + 37 dropped.
    test_source = data.load("digits", "test")
    test = data.pipeline(test_source, batch_size=100, training=False)
    batches = list(test)
    assert [b[0].shape[0] for b in batches] == [100, 100, 100, 60]
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert images.shape == (360, 32, 32, 3) and images.dtype == np.float32
    reference_images, reference_labels = zip(*test_source.dataset.as_numpy_iterator())
    np.testing.assert_array_equal(images, np.stack(reference_images).astype(np.float32))
    np.testing.assert_array_equal(labels, np.array(reference_labels))


def test_mixup_cutmix_pipeline_gives_distributions(digits_train):
    dataset = data.pipeline(digits_train, batch_size=8, training=True, mixup=0.5, cutmix=1.0)
    (views, dists), = _take(dataset, 1)
    assert views.shape == (8, 2, 32, 32, 3) and dists.shape == (8, 2, 10)
    np.testing.assert_allclose(dists.sum(-1), 1.0, atol=1e-5)
    (_, again), = _take(data.pipeline(digits_train, batch_size=8, training=True, mixup=0.5,
                                      cutmix=1.0), 1)
    np.testing.assert_array_equal(dists, again)


def test_large_images_from_a_folder_at_224(image_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = data.load(f"folder:{image_folder}", "train")
    train = data.pipeline(source, batch_size=2, training=True, image_size=224,
                          augmentation="simaugment")
    (views, labels), = _take(train, 1)
    assert views.shape == (2, 2, 224, 224, 3) and labels.shape == (2,)
    test = data.pipeline(source, batch_size=2, training=False, image_size=224)
    (images, _), = _take(test, 1)
    assert images.shape == (2, 224, 224, 3)


def test_tfds_source_through_the_pipeline(tiny_tfds_dir):
    train = data.pipeline(TINY_TFDS_NAME, "train", data_dir=tiny_tfds_dir, batch_size=4,
                          training=True, augmentation="randaugment")
    (views, labels), = _take(train, 1)
    assert views.shape == (4, 2, 16, 16, 3) and set(labels) <= {0, 1, 2}


def test_options_cache_and_auto_shard_policy(digits_train):
    dataset = data.pipeline(digits_train, batch_size=8, training=True)
    options = dataset.options()
    assert options.experimental_distribute.auto_shard_policy == (
        tf.data.experimental.AutoShardPolicy.DATA)
    assert options.deterministic


@pytest.mark.skipif(len(LOGICAL_CPUS) < 2, reason="needs the 2 logical CPUs of tests/conftest.py")
def test_sharding_under_two_replica_mirrored_strategy(digits_train):
    strategy = tf.distribute.MirroredStrategy(LOGICAL_CPUS[:2])
    with strategy.scope():
        dataset = data.pipeline(digits_train, batch_size=8, training=True, augmentation="none")
        with pytest.raises(ValueError, match="batch_size=7"):
            data.pipeline(digits_train, batch_size=7, training=True)
    distributed = strategy.experimental_distribute_dataset(dataset)
    views, labels = next(iter(distributed))
    per_replica_views = strategy.experimental_local_results(views)
    per_replica_labels = strategy.experimental_local_results(labels)
    assert [v.shape for v in per_replica_views] == [(4, 2, 32, 32, 3)] * 2
    # The replicas split the global batch: together they are the undistributed batch
    # (of a fresh pipeline: re-iterating one reshuffles, as each epoch should).
    reference = data.pipeline(digits_train, batch_size=8, training=True, augmentation="none")
    (full_views, full_labels), = _take(reference, 1)
    np.testing.assert_array_equal(np.concatenate([v.numpy() for v in per_replica_views]),
                                  full_views)
    np.testing.assert_array_equal(np.concatenate([l.numpy() for l in per_replica_labels]),
                                  full_labels)


def test_pipeline_argument_errors(digits_train):
    with pytest.raises(ValueError, match="batch_size=0"):
        data.pipeline(digits_train, batch_size=0, training=True)
    with pytest.raises(ValueError, match="views=0"):
        data.pipeline(digits_train, batch_size=2, training=True, views=0)
    with pytest.raises(ValueError, match="training=False"):
        data.pipeline(digits_train, batch_size=2, training=False, mixup=1.0)
    with pytest.raises(ValueError, match="augmentation='simclr'"):
        data.pipeline(digits_train, batch_size=2, training=False, augmentation="simclr")
    with pytest.raises(TypeError, match="source=3"):
        data.pipeline(3, batch_size=2, training=True)
