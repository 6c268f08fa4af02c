"""The paper's augmentation policies and eval preprocessing, deterministic given a seed.

Khosla et al. 2020 (arXiv 2004.11362) §4 and Appendix: SimAugment (SimCLR's policy,
Chen et al. arXiv 2002.05709 Appendix A), AutoAugment, RandAugment and "Stacked
RandAugment" (SimAugment followed by RandAugment, their ResNet-200 result).

Every policy is a function `(image, seed) -> view`: `image` uint8 or float32
`[H, W, 3]` (0..255, any size), `seed` an int `[2]` stateless seed, `view` float32
`[image_size, image_size, 3]` in 0..255. The pipeline derives the seed from
`(seed, element index, view index)`, so two views of one image differ and the same
seed gives the same batch, also under parallel `tf.data` maps.

Where each op comes from:
  * Horizontal flip, color jitter (`RandomBrightness`, `RandomContrast`,
    `RandomSaturation`, `RandomHue`), grayscale (`RandomGrayscale`): Keras 3 core
    preprocessing layers. They are driven through
    their public `get_random_transformation(..., seed=)` / `transform_images` methods
    with a `SeedStream` (see `_seeds.py`) instead of their stateful seed generators.
    `keras.layers.RandomColorJitter` is not used because it ignores the `seed` argument
    of `get_random_transformation`; its four component layers are used directly, in
    its fixed order (torchvision's ColorJitter shuffles the order; we do not).
  * Random resized crop with a scale range: hand-written with
    `tf.image.stateless_sample_distorted_bounding_box` (as SimCLR does). Keras has no
    resized crop with a scale/aspect-ratio range (`RandomCrop` and `RandomZoom` are
    different transforms), and keras-cv 0.9's `RandomResizedCrop` draws from a stateful
    generator.
  * AutoAugment and RandAugment: `supcon.data.autoaugment` (ops from Keras layers and
    `keras.ops`; see its docstring).
  * Gaussian blur: hand-written separable blur (`gaussian_blur`); Keras'
    `RandomGaussianBlur` uses the full 2-D kernel and was ~10x slower at 224 px.
  * Eval resize + center crop: `tf.image.resize` and slicing (one line each).
Nothing comes from keras-cv: core Keras covers every op we need and keras-cv's layers
share the stateful-generator problem.

Constants follow SupCon's reference code (ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8,
grayscale p=0.2) and SimCLR (blur p=0.5 with sigma 0.1..2.0 and a kernel of 10% of
the image side, only for ImageNet-size images).
"""

import keras
import tensorflow as tf

from supcon.data import _seeds
from supcon.data import autoaugment as _autoaugment

from supcon.choices import AUGMENTATIONS  # noqa: E402
PAPER_CROP_SCALE = (0.08, 1.0)  # RandomResizedCrop scale (Chen et al. 2020, Appendix A).
CROP_ASPECT_RATIO = (3.0 / 4.0, 4.0 / 3.0)
COLOR_JITTER = (0.4, 0.4, 0.4, 0.1)  # Brightness, contrast, saturation, hue (SupCon code).
COLOR_JITTER_PROBABILITY = 0.8
GRAYSCALE_PROBABILITY = 0.2
BLUR_PROBABILITY = 0.5
BLUR_SIGMA = (0.1, 2.0)
LARGE_IMAGE_SIZE = 128  # From this side length on: blur in SimAugment, resize+crop for eval.
EVAL_RESIZE_MARGIN = 32  # Shorter side to image_size + 32 before the crop (256 -> 224).


def random_resized_crop(image, image_size, seed, scale=PAPER_CROP_SCALE,
                        ratio=CROP_ASPECT_RATIO):
    """Crops a random area fraction in `scale` with aspect ratio in `ratio`, resizes it.

    Args:
        image: `[H, W, 3]`, uint8 or float32, values 0..255.
        image_size: int, output side length.
        seed: int `[2]` stateless seed.
        scale: `(min, max)` area fraction of the crop (default 0.08..1).
        ratio: `(min, max)` aspect ratio of the crop (default 3/4..4/3).

    Returns:
        float32 `[image_size, image_size, 3]`.
    """
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=scale[0],
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=100,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.cast(tf.slice(image, begin, size), tf.float32)
    crop = tf.image.resize(crop, [image_size, image_size], method="bilinear")
    return tf.ensure_shape(crop, [image_size, image_size, 3])


def eval_preprocess(image, image_size):
    """Resizes the shorter side and center-crops: identity for `image_size`² inputs.

    Images of side `LARGE_IMAGE_SIZE` (128) or more: shorter side to
    `image_size + 32` (256 for 224), then a central `image_size` crop (the ImageNet
    convention). Smaller sizes: shorter side to `image_size`, then the central crop.

    Args:
        image: `[H, W, 3]`, uint8 or float32, values 0..255.
        image_size: int, output side length.

    Returns:
        float32 `[image_size, image_size, 3]`, values 0..255.
    """
    image = tf.cast(image, tf.float32)
    target = image_size + EVAL_RESIZE_MARGIN if image_size >= LARGE_IMAGE_SIZE else image_size
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    scale = target / tf.cast(tf.minimum(height, width), tf.float64)
    new_height = tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32)
    new_width = tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32)
    image = tf.cond(
        tf.logical_and(tf.equal(new_height, height), tf.equal(new_width, width)),
        lambda: image,
        lambda: tf.image.resize(image, [new_height, new_width], antialias=True))
    top = (new_height - image_size) // 2
    left = (new_width - image_size) // 2
    image = image[top:top + image_size, left:left + image_size]
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0), [image_size, image_size, 3])


def _apply(layer, images, stream):
    """Runs a Keras preprocessing layer on `images` with randomness from `stream`."""
    transformation = layer.get_random_transformation(images, training=True, seed=stream)
    return layer.transform_images(images, transformation, training=True)


class _SimAugment:
    """Flip, color jitter (p=0.8), grayscale (p=0.2), optional blur (p=0.5), as Keras layers."""

    def __init__(self, image_size, blur):
        brightness, contrast, saturation, hue = COLOR_JITTER
        value_range = (0, 255)
        self.flip = keras.layers.RandomFlip("horizontal")
        # Keras RandomSaturation maps factor f to the multiplier f / (1 - f); 0.5 is the
        # identity, so a multiplier in [1 - s, 1 + s] is f in [(1-s)/(2-s), (1+s)/(2+s)].
        self.jitter = [
            keras.layers.RandomBrightness(brightness, value_range=value_range),
            keras.layers.RandomContrast(contrast, value_range=value_range),
            keras.layers.RandomSaturation(
                ((1 - saturation) / (2 - saturation), (1 + saturation) / (2 + saturation)),
                value_range=value_range),
            # Keras RandomHue shifts hue by +-factor/2 (of the full circle).
            keras.layers.RandomHue((0.0, 2 * hue), value_range=value_range),
        ]
        self.grayscale = keras.layers.RandomGrayscale(GRAYSCALE_PROBABILITY)
        # ~10% of the side, odd (SimCLR: kernel_size = image_size // 10, radius = size // 2).
        self.blur_kernel_size = max(3, (image_size // 10) // 2 * 2 + 1) if blur else None

    def __call__(self, image, seed):
        stream = _seeds.SeedStream(seed)
        images = _apply(self.flip, image[None], stream)

        def jitter():
            out = images
            for layer in self.jitter:
                # RandomHue's HSV round trip loses the static channel count.
                out = tf.ensure_shape(_apply(layer, out, stream), images.shape)
            return out

        coin = tf.random.stateless_uniform([], seed=_seeds.fold_in(seed, 7))
        images = tf.cond(coin < COLOR_JITTER_PROBABILITY, jitter, lambda: images)
        images = _apply(self.grayscale, images, stream)
        if self.blur_kernel_size is None:
            return images[0]
        coin, sigma = tf.unstack(tf.random.stateless_uniform([2], seed=_seeds.fold_in(seed, 8)))
        sigma = BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * sigma
        return tf.cond(coin < BLUR_PROBABILITY,
                       lambda: gaussian_blur(images[0], sigma, self.blur_kernel_size),
                       lambda: images[0])


def gaussian_blur(image, sigma, kernel_size):
    """Separable Gaussian blur of an `[H, W, 3]` image (reflect-padded borders).

    Hand-written instead of `keras.layers.RandomGaussianBlur`, which convolves with the
    full 2-D kernel and always computes the blurred image: at 224 px with SimCLR's
    23-tap kernel that made SimAugment ~10x slower than the rest of the policy.

    Args:
        image: float32 `[H, W, 3]`.
        sigma: scalar float, the standard deviation in pixels.
        kernel_size: odd Python int.

    Returns:
        float32 `[H, W, 3]`.
    """
    radius = kernel_size // 2
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / sigma))
    kernel /= tf.reduce_sum(kernel)
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                    mode="REFLECT")
    vertical = tf.tile(tf.reshape(kernel, [kernel_size, 1, 1, 1]), [1, 1, 3, 1])
    horizontal = tf.tile(tf.reshape(kernel, [1, kernel_size, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(padded, vertical, [1, 1, 1, 1], "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, horizontal, [1, 1, 1, 1], "VALID")
    return tf.ensure_shape(blurred[0], image.shape)


def get_augmentation(name, image_size, *, crop_scale=PAPER_CROP_SCALE, num_ops=2,
                     magnitude=9, blur=None):
    """Builds a training augmentation policy `(image, seed) -> view`.

    Policies (Khosla et al. 2020, arXiv 2004.11362, §4 and Appendix):
      * `"simaugment"`: random resized crop (`crop_scale`), horizontal flip, color jitter
        with p=0.8, grayscale with p=0.2, Gaussian blur (p=0.5) for large images.
      * `"autoaugment"`: random resized crop, flip, AutoAugment's ImageNet policy.
      * `"randaugment"`: random resized crop, flip, RandAugment(`num_ops`, `magnitude`).
      * `"stacked_randaugment"`: SimAugment followed by RandAugment.
      * `"none"`: the eval preprocessing (`eval_preprocess`); all views are equal.

    Args:
        name: one of `AUGMENTATIONS`.
        image_size: int, output side length.
        crop_scale: `(min, max)` area fraction of the random resized crop (default 0.08..1).
        num_ops: RandAugment's N (default 2).
        magnitude: RandAugment's M on the 0..10 scale (default 9).
        blur: whether SimAugment blurs; default (`None`): only if `image_size >= 128`.

    Returns:
        A function `(image [H, W, 3] uint8/float32 0..255, seed int [2]) -> float32
        [image_size, image_size, 3] 0..255`, made of stateless TF ops (usable in
        `tf.data.Dataset.map`).

    Example:
        >>> policy = get_augmentation("simaugment", 32)
        >>> view = policy(tf.zeros([32, 32, 3], tf.uint8), tf.constant([0, 1]))
    """
    if name not in AUGMENTATIONS:
        raise ValueError(f"`augmentation` must be one of {AUGMENTATIONS}. Received: "
                         f"augmentation={name!r}")
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size}")
    if len(crop_scale) != 2 or not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError("`crop_scale` must be (min, max) with 0 < min <= max <= 1. "
                         f"Received: crop_scale={crop_scale}")
    if name in ("randaugment", "stacked_randaugment"):
        if not 0 <= magnitude <= _autoaugment.RANDAUGMENT_MAX_MAGNITUDE:
            raise ValueError(f"`magnitude` must be in [0, 10]. Received: magnitude={magnitude}")
        if num_ops < 0:
            raise ValueError(f"`num_ops` must be >= 0. Received: num_ops={num_ops}")
    if name == "none":
        return lambda image, seed: eval_preprocess(image, image_size)

    if blur is None:
        blur = image_size >= LARGE_IMAGE_SIZE
    simaugment = _SimAugment(image_size, blur)
    flip = keras.layers.RandomFlip("horizontal")

    def policy(image, seed):
        view = random_resized_crop(image, image_size, _seeds.fold_in(seed, 0), scale=crop_scale)
        if name in ("simaugment", "stacked_randaugment"):
            view = simaugment(view, _seeds.fold_in(seed, 1))
        else:
            view = _apply(flip, view[None], _seeds.SeedStream(_seeds.fold_in(seed, 1)))[0]
        if name == "autoaugment":
            view = _autoaugment.auto_augment(view, _seeds.fold_in(seed, 2))
        elif name in ("randaugment", "stacked_randaugment"):
            view = _autoaugment.rand_augment(view, _seeds.fold_in(seed, 2), num_ops=num_ops,
                                             magnitude=magnitude)
        view = tf.clip_by_value(tf.cast(view, tf.float32), 0.0, 255.0)
        return tf.ensure_shape(view, [image_size, image_size, 3])

    return policy
