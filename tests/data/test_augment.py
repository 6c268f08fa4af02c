"""Tests for supcon.data.augment and supcon.data.autoaugment."""

import colorsys

import numpy as np
import pytest
import tensorflow as tf

from supcon import data
from supcon.data import augment
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
                                  "stacked_randaugment", "crop_flip"])
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
    with pytest.raises(ValueError, match="blur='maybe'"):
        data.get_augmentation("simaugment", 32, blur="maybe")
    for strength in (-0.1, 2.6, True, "0.5", float("nan")):
        with pytest.raises(ValueError, match=f"color_jitter_strength={strength!r}"):
            data.get_augmentation("simaugment", 32, color_jitter_strength=strength)
    with pytest.raises(ValueError, match="num_ops=1.5"):
        data.get_augmentation("stacked_randaugment", 32, num_ops=1.5)


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


def _np_gaussian_blur(image, sigma, size):
    """Float64 NumPy separable blur with reflected borders (SimCLR's kernel, sigma in pixels)."""
    x = np.arange(size) - size // 2
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    radius = size // 2
    padded = np.pad(image.astype(np.float64), [(radius, radius), (radius, radius), (0, 0)],
                    mode="reflect")
    height, width = image.shape[:2]
    rows = sum(k * padded[i:i + height] for i, k in enumerate(kernel))
    return sum(k * rows[:, i:i + width] for i, k in enumerate(kernel))


# Blurred values are convex combinations of 0..255 pixels: float32 sums of 23 such terms in
# any order agree to a few ulps of 255 (~1e-5 each); 1e-3 leaves a margin for FMA
# contraction under XLA and still fails for a wrong tap or border by orders of magnitude.
_BLUR_ATOL = 1e-3


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


@pytest.mark.parametrize("size, kernel_size", [(24, 3), (40, 23)])
def test_gaussian_blur_one_image_and_batch_match_the_reference(size, kernel_size):
    # One image runs compiled shifted sums, a batch a depthwise convolution (each image
    # its own sigma): both are the reference blur, borders included.
    from supcon.data.augment import gaussian_blur

    images = np.stack([_image(size, size, seed=i) for i in range(3)]).astype(np.float32)
    sigmas = np.array([0.1, 1.0, 2.0], np.float32)
    batch = gaussian_blur(tf.constant(images), tf.constant(sigmas), kernel_size).numpy()
    for index, (image, sigma) in enumerate(zip(images, sigmas)):
        expected = _np_gaussian_blur(image, float(sigma), kernel_size)
        one = gaussian_blur(tf.constant(image), tf.constant(sigma), kernel_size).numpy()
        np.testing.assert_allclose(one, expected, rtol=0, atol=_BLUR_ATOL)
        np.testing.assert_allclose(batch[index], expected, rtol=0, atol=_BLUR_ATOL)
    assert np.abs(batch[2] - images[2]).max() > 10.0  # The blur is not the identity here.


# --- Colour jitter against NumPy transcriptions of torchvision's formulas --------------
# torchvision.transforms.functional (tensor path) and google-research SupCon
# `preprocessing._jitter_colors(use_pytorch_impl=True)`, on 0..255 values, in float64.

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601 (PIL convert("L")).
# float32 spacing of values in [128, 256) is 2^-16. A blend is a few rounded float32 ops
# (the luma dot product, two products, a sum): a handful of those ulps. The hue op's HSV
# round trip (a division by the chroma, /255 and *255) measured up to 6 of them; four ops
# in a row, factors up to 1.5, carry each op's error into the next.
_BLEND_ATOL = 4 * 2.0**-16
_HUE_ATOL = 16 * 2.0**-16
_JITTER_ATOL = 64 * 2.0**-16


def _np_blend(image, other, factor):
    return np.clip(factor * image + (1.0 - factor) * other, 0.0, 255.0)


def _np_brightness(image, factor):
    return _np_blend(image, 0.0, factor)


def _np_contrast(image, factor):
    return _np_blend(image, (image @ _LUMA).mean(), factor)


def _np_saturation(image, factor):
    return _np_blend(image, (image @ _LUMA)[..., None], factor)


def _np_hue(image, shift):
    out = np.empty_like(image)
    for index in np.ndindex(image.shape[:2]):
        hue, saturation, value = colorsys.rgb_to_hsv(*(image[index] / 255.0))
        out[index] = np.array(colorsys.hsv_to_rgb((hue + shift) % 1.0, saturation, value)) * 255.0
    return out


_NP_OPS = (_np_brightness, _np_contrast, _np_saturation, _np_hue)


def _np_jitter(image, factors, order):
    for k in order:
        image = _NP_OPS[k](image, factors[k])
    return image


# Factors exact in float32, with and without clipping; hue shifts of both signs and a wrap.
@pytest.mark.parametrize("op, factor", [
    (0, 1.25), (0, 0.625), (1, 1.375), (1, 0.5), (2, 1.5), (2, 0.25),
    (3, 0.0625), (3, -0.25), (3, 0.4375)])
def test_each_jitter_op_matches_the_torchvision_formula(op, factor):
    image = _image(8, 8).astype(np.float64)
    out = augment._JITTER_OPS[op](tf.constant(image, tf.float32), tf.constant(factor)).numpy()
    expected = _NP_OPS[op](image, factor)
    assert not np.allclose(expected, image, atol=1.0)  # The op does something.
    np.testing.assert_allclose(out, expected, rtol=0, atol=_HUE_ATOL if op == 3 else _BLEND_ATOL)


def test_grayscale_is_luma_on_three_channels():
    image = _image(8, 8).astype(np.float64)
    out = augment._grayscale(tf.constant(image, tf.float32)).numpy()
    np.testing.assert_allclose(out, np.repeat((image @ _LUMA)[..., None], 3, -1), rtol=0,
                               atol=_BLEND_ATOL)


@pytest.mark.parametrize("size", [8, 64])
def test_color_jitter_applies_the_ops_in_the_given_order(size):
    # 8 px runs the TensorFlow ops, 64 px the XLA-compiled jitter of the host pipeline: both
    # are the NumPy transcription at one tolerance.
    image = _image(size, size).astype(np.float64)
    jitter = augment._jitter_for(tf.constant(image, tf.float32))
    assert (jitter is augment._compiled_color_jitter) == (size == 64)
    factors = [1.25, 0.5, 1.5, 0.125]
    outputs = []
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        out = jitter(tf.constant(image, tf.float32), tf.constant(factors), tf.constant(order)).numpy()
        np.testing.assert_allclose(out, _np_jitter(image, factors, order), rtol=0,
                                   atol=_JITTER_ATOL)
        outputs.append(out)
    assert not np.allclose(outputs[0], outputs[1], atol=1.0)  # The order matters here.


@tf.function
def _draw_params(seeds, strength):
    return tf.map_fn(lambda seed: augment._jitter_params(seed, strength), seeds,
                     fn_output_signature=(tf.float32, tf.int32))


@pytest.mark.parametrize("strength", [0.5, 1.0, 1.5])
def test_strength_gives_torchvision_ranges(strength):
    seeds = tf.stack([tf.range(2000, dtype=tf.int64), tf.fill([2000], tf.constant(5, tf.int64))], 1)
    factors, _ = _draw_params(seeds, strength)
    factors = factors.numpy()
    low = [max(0.0, 1 - 0.8 * strength)] * 3 + [-0.2 * strength]
    high = [1 + 0.8 * strength] * 3 + [0.2 * strength]
    width = np.subtract(high, low)
    # float32 arithmetic of `low + (high - low) * u` may round onto a bound, not past it.
    assert np.all(factors.min(0) >= np.array(low, np.float32))
    assert np.all(factors.max(0) <= np.array(high, np.float32))
    # 2000 uniform draws come within 1% of both ends (fails with probability ~1e-8).
    np.testing.assert_array_less(factors.min(0), low + 0.01 * width)
    np.testing.assert_array_less(high - 0.01 * width, factors.max(0))


def test_default_strength_is_the_supcon_color_jitter():
    ranges = [0.8 * augment.DEFAULT_COLOR_JITTER_STRENGTH] * 3 + [
        0.2 * augment.DEFAULT_COLOR_JITTER_STRENGTH]
    np.testing.assert_allclose(ranges, [0.4, 0.4, 0.4, 0.1])  # ColorJitter(0.4, 0.4, 0.4, 0.1).


def test_jitter_order_is_random_per_seed_and_the_same_for_the_same_seed():
    seeds = tf.stack([tf.range(300, dtype=tf.int64), tf.zeros([300], tf.int64)], 1)
    _, orders = _draw_params(seeds, 0.5)
    orders = [tuple(o) for o in orders.numpy()]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len(set(orders)) == 24  # All 4! orders occur in 300 draws.
    _, again = _draw_params(seeds, 0.5)
    assert [tuple(o) for o in again.numpy()] == orders
    # The jitter stage of a seed is the reference jitter with that seed's factors and order,
    # or the image where its coin (p 0.8) says no.
    image = _image(8, 8).astype(np.float64)
    jittered = []
    for k in range(6):
        seed = tf.constant([k, 11], tf.int64)
        params = augment._draw_stage("color_jitter", seed, (), 0.5)
        out = augment._apply_stage("color_jitter", tf.constant(image, tf.float32), params).numpy()
        jittered.append(bool(params["jitter"]))
        expected = _np_jitter(image, params["factors"].numpy().astype(np.float64),
                              params["order"].numpy()) if jittered[-1] else image
        np.testing.assert_allclose(out, expected, rtol=0, atol=_JITTER_ATOL)
    assert any(jittered)


def test_zero_strength_jitter_is_the_identity():
    image = tf.constant(_image(8, 8), tf.float32)
    seed = tf.constant([1, 2], tf.int64)
    out = augment._apply_stage("color_jitter", image,
                               augment._draw_stage("color_jitter", seed, (), 0.0))
    np.testing.assert_array_equal(out.numpy(), image.numpy())
    batch = tf.stack([image] * 5)  # Batched: no image drawn for the jitter either.
    out = augment._apply_stage("color_jitter", batch,
                               augment._draw_stage("color_jitter", seed, (5,), 0.0))
    np.testing.assert_array_equal(out.numpy(), batch.numpy())


def _stage_names(name, image_size=32, blur="auto"):
    return [stage for stage, _ in augment._stages(
        name, image_size, num_ops=2, magnitude=9, blur=blur, color_jitter_strength=0.5)]


def test_stage_orders_follow_the_reference_code():
    # google-research SupCon preprocessing: crop, flip, then `_simclr_augment` or
    # `_stacked_simclr_randaugment` (jitter, RandAugment, grayscale, blur). The crop comes
    # first in every policy (`crop_views`), `_stages` lists the rest.
    assert _stage_names("stacked_randaugment", 224) == [
        "flip", "color_jitter", "randaugment", "grayscale", "blur"]
    assert _stage_names("simaugment", 224) == ["flip", "color_jitter", "grayscale", "blur"]
    assert _stage_names("simaugment", 32) == ["flip", "color_jitter", "grayscale"]
    assert _stage_names("stacked_randaugment", 32) == [
        "flip", "color_jitter", "randaugment", "grayscale"]
    assert _stage_names("crop_flip", 224, blur="on") == ["flip"]
    assert _stage_names("randaugment", 224) == ["flip", "randaugment"]
    assert _stage_names("autoaugment", 224) == ["flip", "autoaugment"]


@pytest.mark.parametrize("blur, size, blurs", [
    ("auto", 32, False), ("auto", 128, True), ("on", 32, True), ("off", 224, False),
    (None, 32, False), (None, 224, True), (True, 32, True), (False, 224, False)])
def test_blur_choices(blur, size, blurs):
    assert ("blur" in _stage_names("simaugment", size, blur)) == blurs


def test_blur_on_blurs_a_small_image():
    images = np.stack([_image(32, 32)])
    on = _views(data.get_augmentation("simaugment", 32, blur="on"), images, num_views=8)
    off = _views(data.get_augmentation("simaugment", 32, blur="off"), images, num_views=8)
    same = [np.array_equal(a, b) for a, b in zip(on[0], off[0])]
    assert any(same) and not all(same)  # p 0.5 per view; the other stages' seeds are shared.


def test_crop_flip_is_the_crop_and_a_flip_only():
    image = _image(40, 48)
    policy = data.get_augmentation("crop_flip", 24, crop_scale=(0.2, 1.0))
    flipped = []
    for k in range(8):
        seed = tf.constant([k, 9], tf.int64)
        crop = data.random_resized_crop(tf.constant(image), 24, _seeds.fold_in(seed, 0),
                                        scale=(0.2, 1.0)).numpy()
        view = policy(tf.constant(image), seed).numpy()
        if np.array_equal(view, crop):
            flipped.append(False)
        else:
            np.testing.assert_array_equal(view, crop[:, ::-1])
            flipped.append(True)
    assert any(flipped) and not all(flipped)


def test_jitter_and_grayscale_probabilities():
    # Over 400 views, the jitter stage changes ~80% and the grayscale stage ~20% of them
    # (binomial standard deviation 2%: the bands are 5 of them wide).
    stages = dict(augment._stages("simaugment", 8, num_ops=2, magnitude=9, blur="off",
                                  color_jitter_strength=1.0))
    image = tf.constant(_image(8, 8), tf.float32)

    def changed(stage, index):
        out = stages[stage](image, tf.stack([index, tf.constant(3, tf.int64)]))
        return tf.reduce_any(tf.not_equal(out, image))

    for stage, probability in (("color_jitter", 0.8), ("grayscale", 0.2)):
        rate = np.mean(list(tf.data.Dataset.range(400).map(
            lambda i, s=stage: changed(s, i)).as_numpy_iterator()))
        assert abs(rate - probability) < 0.1, (stage, rate)
