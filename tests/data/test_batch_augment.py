"""Tests for supcon.data.batch_augment: the stage after the crop, batched on host or device."""

import numpy as np
import pytest
import tensorflow as tf

from supcon import data
from supcon.data import _seeds
from supcon.data import augment
from supcon.data import batch_augment

SAMPLES = 4000


def _image(size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (size, size, 3)).astype(np.float32)


@tf.function
def _host_params(strength):
    """The host's draws: one per view seed `(root, element, view)`, as the pipeline makes them."""
    root = _seeds.root_seed(0)

    def one(index):
        seed = _seeds.fold_in(root, index // 2, index % 2)
        return batch_augment.draw_params(seed, (), policy="simaugment",
                                         color_jitter_strength=strength)

    return tf.map_fn(one, tf.range(SAMPLES, dtype=tf.int64),
                     fn_output_signature={"flip": tf.bool, "jitter": tf.bool,
                                          "factors": tf.float32, "order": tf.int32,
                                          "grayscale": tf.bool, "blur": tf.bool,
                                          "sigma": tf.float32})


def _device_params(strength):
    """The device's draws: one call for a whole batch from a `(seed, step, replica)` seed."""
    seed = _seeds.fold_in(_seeds.root_seed(0), -3, 7, 0)
    return batch_augment.draw_params(seed, (SAMPLES,), policy="simaugment",
                                     color_jitter_strength=strength)


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return np.max(np.abs(cdf_a - cdf_b))


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_host_and_device_draw_from_the_same_distributions(strength):
    host = {k: v.numpy() for k, v in _host_params(strength).items()}
    device = {k: v.numpy() for k, v in _device_params(strength).items()}
    n = SAMPLES
    # Coins: both rates within 5 binomial standard deviations of p (and of each other).
    for name, p in (("flip", 0.5), ("jitter", augment.COLOR_JITTER_PROBABILITY),
                    ("grayscale", augment.GRAYSCALE_PROBABILITY),
                    ("blur", augment.BLUR_PROBABILITY)):
        band = 5 * np.sqrt(p * (1 - p) / n)
        assert abs(host[name].mean() - p) < band, (name, host[name].mean())
        assert abs(device[name].mean() - p) < band, (name, device[name].mean())
    # Continuous parameters: two-sample KS statistic under the 1e-3 critical value,
    # 1.95 * sqrt(2 / n) (about 0.044 for n = 4000).
    critical = 1.95 * np.sqrt(2.0 / n)
    for k in range(4):
        assert _ks(host["factors"][:, k], device["factors"][:, k]) < critical, k
    assert _ks(host["sigma"], device["sigma"]) < critical
    # The op orders: each op leads ~1/4 of the time on both.
    for params in (host, device):
        first = np.bincount(params["order"][:, 0], minlength=4) / n
        np.testing.assert_allclose(first, 0.25, atol=5 * np.sqrt(0.25 * 0.75 / n))
        assert all(sorted(o) == [0, 1, 2, 3] for o in params["order"][:50])
    low = max(0.0, 1 - 0.8 * strength)
    assert device["factors"][:, :3].min() >= np.float32(low)
    assert device["factors"][:, 3].max() <= np.float32(0.2 * strength)


@pytest.mark.parametrize("static_shapes", [False, True])
def test_batched_stage_is_the_per_image_policy(static_shapes):
    # The per-image policy's stages after the crop, and the batch with the same draws.
    size, count = 24, 12
    finish = augment._after_crop("simaugment", size, num_ops=2, magnitude=9, blur="on",
                                 color_jitter_strength=1.0)
    images = np.stack([_image(size, i) for i in range(count)])
    seeds = [tf.constant([i, 9], tf.int64) for i in range(count)]
    expected = np.stack([finish(tf.constant(image), seed).numpy()
                         for image, seed in zip(images, seeds)])
    params = [batch_augment.draw_params(seed, (), policy="simaugment", color_jitter_strength=1.0)
              for seed in seeds]
    params = tf.nest.map_structure(lambda *p: tf.stack(p), *params)
    out = batch_augment.apply_params(tf.constant(images), params, policy="simaugment",
                                     blur_kernel_size=augment._blur_kernel_size("on", size),
                                     static_shapes=static_shapes).numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3)
    assert params["jitter"].numpy().any() and params["blur"].numpy().any()
    assert not params["jitter"].numpy().all() and not params["blur"].numpy().all()


@pytest.mark.parametrize("static_shapes", [False, True])
@pytest.mark.parametrize("drawn", [False, True])
def test_batched_stage_with_no_image_or_every_image_drawn(drawn, static_shapes):
    # A batch where no image (or every image) draws the jitter, the hue or the blur: the
    # gathers of dynamic size are empty (or whole).
    size, count = 24, 3
    images = tf.constant(np.stack([_image(size, i) for i in range(count)]))
    seed = tf.constant([4, 2], tf.int64)
    params = batch_augment.draw_params(seed, (count,), policy="simaugment",
                                       color_jitter_strength=1.0)
    params.update({name: tf.fill([count], drawn) for name in ("flip", "jitter", "grayscale",
                                                               "blur")})
    params["order"] = tf.constant([[3, 0, 1, 2]] * count)  # The hue first for every image.
    out = batch_augment.apply_params(images, params, policy="simaugment", blur_kernel_size=5,
                                     static_shapes=static_shapes).numpy()
    for index in range(count):  # Each image as the per-image stages make it.
        one = {k: v[index] for k, v in params.items()}
        expected = images[index]
        for name in ("flip", "color_jitter", "grayscale", "blur"):
            expected = augment._apply_stage(name, expected, one, kernel_size=5)
        np.testing.assert_allclose(out[index], expected.numpy(), rtol=0, atol=1e-3)
    if not drawn:
        np.testing.assert_array_equal(out, images.numpy())


def test_host_pipeline_is_the_per_image_policy():
    source = data.load("digits", "train")
    views, _ = next(iter(data.pipeline(source, batch_size=4, training=True, seed=3, repeat=True,
                                       cache=False, shuffle_buffer=1)))
    policy = data.get_augmentation("simaugment", source.info.image_shape[0])
    root = _seeds.root_seed(3)
    for index, (image, _) in enumerate(source.dataset.take(4)):
        for v in range(2):
            np.testing.assert_array_equal(views[index, v].numpy(),
                                          policy(image, _seeds.fold_in(root, index, v)).numpy())


def test_device_pipeline_gives_the_crops():
    source = data.load("digits", "train")
    host, _ = next(iter(data.pipeline(source, batch_size=4, training=True, augmentation="crop_flip",
                                      repeat=True, cache=False, shuffle_buffer=1)))
    crops, _ = next(iter(data.pipeline(source, batch_size=4, training=True, repeat=True,
                                       augmentation="crop_flip", augment_on="device",
                                       cache=False, shuffle_buffer=1)))
    # crop_flip: the host views are the device crops, some of them flipped.
    for b in range(4):
        for v in range(2):
            h, c = host[b, v].numpy(), crops[b, v].numpy()
            assert np.array_equal(h, c) or np.array_equal(h, c[:, ::-1])
    with pytest.raises(ValueError, match="augmentation='randaugment'"):
        data.pipeline(source, batch_size=4, training=True, augmentation="randaugment",
                      augment_on="device")


def test_device_augmentation_is_seeded_by_step_and_replica():
    augment_fn = data.DeviceAugmentation("simaugment", 32, seed=0, blur="on")
    views = tf.constant(np.stack([[_image(32, 2 * i), _image(32, 2 * i + 1)] for i in range(4)]))
    first = augment_fn(views, step=5, replica=0).numpy()
    assert first.shape == (4, 2, 32, 32, 3) and 0 <= first.min() and first.max() <= 255
    np.testing.assert_array_equal(first, augment_fn(views, step=5, replica=0).numpy())
    assert not np.allclose(first, augment_fn(views, step=6, replica=0).numpy())
    assert not np.allclose(first, augment_fn(views, step=5, replica=1).numpy())
    compiled = tf.function(lambda v: data.DeviceAugmentation(
        "simaugment", 32, seed=0, blur="on", static_shapes=True)(v, step=5, replica=0),
        jit_compile=True)
    # Under XLA the stateless ops pick XLA's own generator ("auto_select"), so the draws
    # differ from the graph's; still a pure function of the seed.
    xla = compiled(views).numpy()
    assert xla.shape == first.shape and 0 <= xla.min() and xla.max() <= 255
    np.testing.assert_array_equal(xla, compiled(views).numpy())
    with pytest.raises(ValueError, match="augmentation='autoaugment'"):
        data.DeviceAugmentation("autoaugment", 32, seed=0)
