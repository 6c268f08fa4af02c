"""Tests for supcon.data.augment and supcon.data.autoaugment."""

import numpy as np
import pytest
import tensorflow as tf

from supcon import data
from supcon.data import autoaugment
from supcon.data import _seeds


def _image(height=40, width=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3)).astype(np.uint8)


def _views(policy, images, num_views=2, seed=0):
    """Runs `policy` in a parallel tf.data map, as the pipeline does: `[N, V, S, S, 3]`."""
    root = _seeds.root_seed(seed)

    def make(index, image):
        return tf.stack([policy(image, _seeds.fold_in(root, index, v)) for v in range(num_views)])

    dataset = tf.data.Dataset.from_tensor_slices(images).enumerate().map(
        make, num_parallel_calls=4, deterministic=True)
    return np.stack(list(dataset.as_numpy_iterator()))


@pytest.mark.parametrize("image_size", [32, 224])
@pytest.mark.parametrize("name", ["simaugment", "autoaugment", "randaugment",
                                  "stacked_randaugment"])
def test_policy_shapes_ranges_determinism_and_distinct_views(name, image_size):
    images = np.stack([_image(seed=0), _image(seed=1)])  # 40x48 inputs: crops are resized.
    policy = data.get_augmentation(name, image_size)
    first = _views(policy, images)
    assert first.shape == (2, 2, image_size, image_size, 3) and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 255.0
    np.testing.assert_array_equal(first, _views(policy, images))  # Same seed, same views.
    assert not np.allclose(first[:, 0], first[:, 1])  # Two views of an image differ.
    assert not np.allclose(first, _views(policy, images, seed=1))  # Another seed differs.


def test_none_policy_is_eval_preprocessing():
    images = np.stack([_image(32, 32)])
    views = _views(data.get_augmentation("none", 32), images)
    np.testing.assert_array_equal(views[0, 0], images[0].astype(np.float32))
    np.testing.assert_array_equal(views[0, 0], views[0, 1])


def test_eval_preprocess_identity_for_32px():
    image = _image(32, 32)
    out = data.eval_preprocess(tf.constant(image), 32).numpy()
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image.astype(np.float32))


def test_eval_preprocess_large_resizes_shorter_side_then_center_crops():
    # 256x320 image whose left/right 32 columns are black: shorter side to 224 + 32 = 256
    # (no resize), the 224 crop starts at column (320 - 224) / 2 = 48 and row 16.
    image = np.full((256, 320, 3), 200, np.uint8)
    image[:, :32] = 0
    image[:, -32:] = 0
    image[16, 48:272] = 10  # First row of the crop.
    out = data.eval_preprocess(tf.constant(image), 224).numpy()
    assert out.shape == (224, 224, 3)
    np.testing.assert_array_equal(out[0], np.full((224, 3), 10.0))
    np.testing.assert_array_equal(out[1:], np.full((223, 224, 3), 200.0))
    # A 512x640 image is halved first: same content, same crop.
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    out_big = data.eval_preprocess(tf.constant(big), 224).numpy()
    np.testing.assert_allclose(out_big[2:], out[2:], atol=1.0)


def test_random_resized_crop_scale_range():
    # A 100x100 image with pixel value = column index: the crop's column span bounds its
    # width; area fraction (width * height / 100^2) must lie in the scale range.
    image = np.tile(np.arange(100, dtype=np.float32)[None, :, None], (100, 1, 3))
    image = np.minimum(image, 255)
    for k in range(20):
        seed = tf.constant([k, 7])
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            [100, 100, 3], tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
            min_object_covered=0.5, aspect_ratio_range=(0.75, 1.334), area_range=(0.5, 1.0),
            max_attempts=100, use_image_if_no_bounding_boxes=True)
        area = size.numpy()[0] * size.numpy()[1] / 1e4
        assert 0.45 <= area <= 1.0
        crop = data.random_resized_crop(tf.constant(image), 16, seed, scale=(0.5, 1.0)).numpy()
        assert crop.shape == (16, 16, 3)
        np.testing.assert_allclose(crop[0, 0, 0], begin.numpy()[1], atol=4.0)


def test_augmentation_argument_errors():
    with pytest.raises(ValueError, match="augmentation='sim'"):
        data.get_augmentation("sim", 32)
    with pytest.raises(ValueError, match="magnitude=11"):
        data.get_augmentation("randaugment", 32, magnitude=11)
    with pytest.raises(ValueError, match="crop_scale"):
        data.get_augmentation("simaugment", 32, crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="image_size=0"):
        data.get_augmentation("simaugment", 0)


# --- AutoAugment / RandAugment ops against NumPy references (PIL semantics) ------------


def _op(name, image, fraction, seed=(3, 4)):
    return autoaugment.apply_op(tf.constant(image, tf.float32), name, fraction,
                                tf.constant(seed, tf.int64)).numpy()


def _one_of(out, candidates, atol=1e-3):
    assert any(np.allclose(out, c, atol=atol) for c in candidates), "no candidate matched"


def test_color_ops_match_numpy_reference():
    image = _image(8, 8).astype(np.float32)
    gray = image @ np.array([0.2989, 0.587, 0.114], np.float32)  # ITU-R 601-2 luma.
    for fraction in (0.3, 1.0):
        delta = 0.9 * fraction
        factors = (1 - delta, 1 + delta)
        _one_of(_op("Brightness", image, fraction),
                [np.clip(image * f, 0, 255) for f in factors])
        _one_of(_op("Color", image, fraction),
                [np.clip(gray[..., None] + f * (image - gray[..., None]), 0, 255)
                 for f in factors], atol=0.1)
        _one_of(_op("Contrast", image, fraction),
                [np.clip(gray.mean() + f * (image - gray.mean()), 0, 255) for f in factors],
                atol=0.1)
    np.testing.assert_allclose(_op("Solarize", image, 0.5),
                               np.where(image < 127.5, image, 255 - image))
    np.testing.assert_allclose(_op("Posterize", image, 1.0), np.floor(image / 16) * 16)
    np.testing.assert_allclose(_op("Posterize", image, 0.0), image)
    np.testing.assert_allclose(_op("Invert", image, 0.0), 255 - image)
    np.testing.assert_allclose(_op("Identity", image, 0.7), image)


def test_translate_and_shear_match_numpy_reference():
    image = _image(32, 32).astype(np.float32)
    shift = 4  # Pixels: fraction * 150/331 * 32 = 4.
    fraction = shift / (autoaugment.TRANSLATE_MAX_FRACTION * 32)
    right = np.full_like(image, 128.0)
    right[:, shift:] = image[:, :-shift]
    left = np.full_like(image, 128.0)
    left[:, :-shift] = image[:, shift:]
    _one_of(_op("TranslateX", image, fraction), [right, left], atol=1e-2)
    # ShearX by s maps output (x, y) to input (x + s y, y): row y moves by s * y pixels.
    fraction = 0.5 / (autoaugment.SHEAR_MAX * 16)  # s = 1/32: row 32 moves by 1 pixel.
    out = _op("ShearX", image, fraction)
    np.testing.assert_allclose(out[0], image[0], atol=1e-3)  # Row 0 does not move.


def test_rotate_keeps_the_center_and_equalize_is_deterministic():
    image = np.zeros((33, 33, 3), np.float32)
    image[16, 16] = 255.0
    out = _op("Rotate", image, 1.0)  # +-30 degrees about the center.
    assert out[16, 16, 0] == pytest.approx(255.0, abs=1e-2)
    assert out[0, 0, 0] == pytest.approx(autoaugment.FILL_VALUE)  # Corner filled with gray.
    flat = _image(8, 8).astype(np.float32)
    np.testing.assert_array_equal(_op("Equalize", flat, 0.0), _op("Equalize", flat, 0.0))
    stretched = _op("AutoContrast", flat * 0.5 + 20, 0.0)
    assert stretched.min() == pytest.approx(0.0) and stretched.max() == pytest.approx(255.0)


def test_imagenet_policy_table():
    assert len(autoaugment.IMAGENET_POLICY) == 25
    for sub_policy in autoaugment.IMAGENET_POLICY:
        assert len(sub_policy) == 2
        for name, probability, magnitude in sub_policy:
            assert name in autoaugment.RANDAUGMENT_OPS + ("Invert",)
            assert 0.0 <= probability <= 1.0 and 0 <= magnitude <= 9


def test_rand_augment_zero_ops_is_identity_and_validates():
    image = tf.constant(_image(16, 16), tf.float32)
    out = data.rand_augment(image, tf.constant([1, 2]), num_ops=0)
    np.testing.assert_array_equal(out.numpy(), image.numpy())
    with pytest.raises(ValueError, match="num_ops=-1"):
        data.rand_augment(image, tf.constant([1, 2]), num_ops=-1)


def test_gaussian_blur_matches_numpy_reference():
    from supcon.data.augment import gaussian_blur

    image = np.zeros((15, 15, 3), np.float32)
    image[7, 7] = 100.0  # An impulse: the blur is the (separable) kernel itself.
    sigma, size = 1.5, 5
    x = np.arange(size) - size // 2
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    expected = np.zeros((15, 15), np.float32)
    expected[5:10, 5:10] = 100.0 * np.outer(kernel, kernel)
    out = gaussian_blur(tf.constant(image), tf.constant(sigma), size).numpy()
    np.testing.assert_allclose(out[..., 1], expected, atol=1e-4)
    constant = np.full((9, 9, 3), 77.0, np.float32)  # Reflect padding keeps borders flat.
    np.testing.assert_allclose(gaussian_blur(tf.constant(constant), 2.0, 7).numpy(), constant,
                               rtol=1e-5)
