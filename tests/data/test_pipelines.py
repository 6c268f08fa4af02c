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
    assert views.shape == (8, 3, 16, 16, 3) and views.dtype == np.float32
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
    assert images.shape == (360, 16, 16, 3) and images.dtype == np.float32
    reference_images, reference_labels = zip(*test_source.dataset.as_numpy_iterator())
    np.testing.assert_array_equal(images, np.stack(reference_images).astype(np.float32))
    np.testing.assert_array_equal(labels, np.array(reference_labels))


def test_mixup_cutmix_pipeline_gives_distributions(digits_train):
    dataset = data.pipeline(digits_train, batch_size=8, training=True, mixup=0.5, cutmix=1.0)
    (views, dists), = _take(dataset, 1)
    assert views.shape == (8, 2, 16, 16, 3) and dists.shape == (8, 2, 10)
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


def _stream(source, start_batch=0, **kwargs):
    return data.pipeline(source, batch_size=100, training=True, seed=3, repeat=True,
                         start_batch=start_batch, **kwargs)


def test_stream_is_a_pure_function_of_seed_and_batch_index(digits_train):
    # 1437 images, batches of 100: batch 14 spans passes 0 and 1, batch 28 passes 1 and 2.
    reference = _take(_stream(digits_train), 30)
    thrown_away = _stream(digits_train)
    for _ in range(3):  # Keras makes (and drops) an iterator at the start of every `fit`.
        next(iter(thrown_away))
    again = _take(thrown_away, 16)  # Across the first pass boundary (batch 14).
    for start in (0, 1, 14, 15, 29):
        # Exact: the same pipeline, the same elements, the same stateless augmentation seeds.
        # Two batches from each start: the first and the one after it.
        for (a_views, a_labels), (b_views, b_labels) in zip(
                reference[start:start + 2], _take(_stream(digits_train, start), min(2, 30 - start))):
            np.testing.assert_array_equal(b_views, a_views, err_msg=f"start_batch={start}")
            np.testing.assert_array_equal(b_labels, a_labels, err_msg=f"start_batch={start}")
    for (a_views, a_labels), (b_views, b_labels) in zip(reference, again):
        np.testing.assert_array_equal(b_views, a_views)
        np.testing.assert_array_equal(b_labels, a_labels)


def test_each_pass_is_a_new_permutation_of_the_split(digits_train):
    plain = _take(_stream(digits_train, augmentation="none"), 29)
    images = np.concatenate([views[:, 0] for views, _ in plain]).astype(np.uint8)
    source = sorted(image.numpy().tobytes() for image, _ in digits_train.dataset)
    first, second = images[:1437], images[1437:2874]
    for one_pass in (first, second):  # Every image exactly once per pass.
        assert sorted(image.tobytes() for image in one_pass) == source
    assert not np.array_equal(first, second)  # Another order in each pass.


def test_start_batch_errors(digits_train):
    with pytest.raises(ValueError, match="start_batch=-1"):
        data.pipeline(digits_train, batch_size=2, training=True, repeat=True, start_batch=-1)
    with pytest.raises(ValueError, match="start_batch=3, training=True, repeat=False"):
        data.pipeline(digits_train, batch_size=2, training=True, start_batch=3)


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
    assert [v.shape for v in per_replica_views] == [(4, 2, 16, 16, 3)] * 2
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


def test_augmentation_arguments_reach_the_policy(digits_train, monkeypatch):
    calls = []
    real = data.pipelines._augment.get_augmentation

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(data.pipelines._augment, "get_augmentation", recording)
    data.pipeline(digits_train, batch_size=2, training=True, augmentation="stacked_randaugment",
                  color_jitter_strength=1.0, blur="on", num_ops=3, magnitude=5,
                  crop_scale=(0.2, 1.0))
    assert calls == [dict(crop_scale=(0.2, 1.0), num_ops=3, magnitude=5, blur="on",
                          color_jitter_strength=1.0)]
    with pytest.raises(ValueError, match="blur='sometimes'"):
        data.pipeline(digits_train, batch_size=2, training=True, blur="sometimes")
