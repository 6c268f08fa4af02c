"""The paper's augmentation policies and eval preprocessing, deterministic given a seed.

Khosla et al. 2020 (arXiv 2004.11362) §4 and Appendix: SimAugment (SimCLR's policy,
Chen et al. arXiv 2002.05709 Appendix A), AutoAugment, RandAugment and "Stacked
RandAugment" (their ResNet-200 result), plus `crop_flip`, the crop and flip alone of the
reference code's cross-entropy runs and linear-classifier training images.

Every policy is a function `(image, seed) -> view`: `image` uint8 or float32
`[H, W, 3]` (0..255, any size), `seed` an int `[2]` stateless seed, `view` float32
`[image_size, image_size, 3]` in 0..255. The pipeline derives the seed from
`(seed, element index, view index)`, so two views of one image differ and the same
seed gives the same batch, also under parallel `tf.data` maps. A policy is the random
resized crop (`crop_views`, which also crops several views of one image with one decode)
followed by a list of stages (`_stages`), each `(image, seed) -> image` with a seed folded
from its own tag. The stages of `simaugment` and `crop_flip` (flip, colour jitter,
grayscale, blur) are each a draw of parameters and an application of them
(`_draw_stage`, `_apply_stage`) that take one image or a batch with per-image parameters:
the policy runs them per image, `supcon.data.batch_augment` on a batch.

Colour jitter follows torchvision's `ColorJitter` as google-research's SupCon code
reimplements it (`preprocessing._jitter_colors(use_pytorch_impl=True)`): strength s gives
brightness, contrast and saturation factors drawn from U[max(0, 1 - 0.8 s), 1 + 0.8 s]
and a hue shift from U[-0.2 s, 0.2 s] (SimCLR's constants, Chen et al. Appendix A); the
four are applied in a random order per image, each clipping to 0..255:
  * brightness: `b * image` (a blend with black);
  * contrast: `c * image + (1 - c) * mean(gray(image))`, one scalar mean per image;
  * saturation: `s * image + (1 - s) * gray(image)`;
  * hue: H of HSV shifted by `h`, modulo 1.
`gray` is ITU-R 601 luma `0.299 R + 0.587 G + 0.114 B` (PIL's `convert("L")`, which
torchvision's ColorJitter and RandomGrayscale apply to the PIL images of the official
SupCon code), repeated on the 3 channels.

Where each op comes from:
  * Horizontal flip: one stateless coin and a reversed width axis, so that one image and
    a batch with per-image coins (`supcon.data.batch_augment`) flip alike
    (`keras.layers.RandomFlip` draws from a stateful generator).
  * Colour jitter and grayscale: hand-written (a few `tf` lines each), because Keras'
    layers define other transforms. `RandomBrightness` adds a delta instead of
    multiplying; `RandomContrast` blends each channel with its own mean, not with the
    mean of the grayscale image; `RandomSaturation` scales S
    in HSV (and does not clip it to 1) instead of blending with the grayscale image;
    `RandomColorJitter` applies its layers in a fixed order and ignores the `seed`
    argument of `get_random_transformation`; `RandomGrayscale` (like `tf.image`) uses
    luma weights 0.2989/0.587/0.114. `RandomHue` does shift H by U[-h, h] (a random
    sign times U[0, h]); it is not used so that the jitter draws its four factors and
    their order in one place (`_jitter_params`) and applies them as plain functions of
    a factor (`_color_jitter`), which the tests call with fixed factors.
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

Probabilities follow SupCon's reference code (colour jitter p=0.8, grayscale p=0.2) and
SimCLR (blur p=0.5 with sigma 0.1..2.0 and a kernel of 10% of the image side, by default
only for ImageNet-size images).
"""

import numbers

import tensorflow as tf

from supcon.data import _seeds
from supcon.data import autoaugment as _autoaugment
from supcon.data import decode as _decode

from supcon.choices import AUGMENTATIONS  # noqa: E402
PAPER_CROP_SCALE = (0.08, 1.0)  # RandomResizedCrop scale (Chen et al. 2020, Appendix A).
CROP_ASPECT_RATIO = (3.0 / 4.0, 4.0 / 3.0)
# Colour strength s; 0.5 is the SupCon CIFAR code's ColorJitter(0.4, 0.4, 0.4, 0.1).
DEFAULT_COLOR_JITTER_STRENGTH = 0.5
# Brightness, contrast, saturation, hue ranges per unit of s (Chen et al. 2020, Appendix A).
COLOR_JITTER_PER_STRENGTH = (0.8, 0.8, 0.8, 0.2)
MAX_HUE_SHIFT = 0.5  # torchvision's bound on the hue range: half the colour circle.
FLIP_PROBABILITY = 0.5  # torchvision RandomHorizontalFlip.
COLOR_JITTER_PROBABILITY = 0.8
GRAYSCALE_PROBABILITY = 0.2
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 (PIL's convert("L")).
BLUR_PROBABILITY = 0.5
BLUR_SIGMA = (0.1, 2.0)
BLUR_CHOICES = ("auto", "on", "off")
LARGE_IMAGE_SIZE = 128  # From this side length on: blur by default, resize+crop for eval.
EVAL_RESIZE_MARGIN = 32  # Shorter side to image_size + 32 before the crop (256 -> 224).
# Seed tag of each stage: a stage's randomness does not move when other stages are added.
# (crop 0, flip 1, AutoAugment/RandAugment 2: those policies' views are as they were.)
_STAGE_TAGS = {"crop": 0, "flip": 1, "autoaugment": 2, "randaugment": 2, "color_jitter": 3,
               "grayscale": 4, "blur": 5}


def random_resized_crop(image, image_size, seed, scale=PAPER_CROP_SCALE,
                        ratio=CROP_ASPECT_RATIO):
    """Crops a random area fraction in `scale` with aspect ratio in `ratio`, resizes it.

    Args:
        image: `[H, W, 3]`, uint8 or float32, values 0..255; or a scalar `tf.string` of
            encoded image bytes, of which a JPEG is decoded inside the crop window only
            (`supcon.data.decode.decode_windows`: the same crop).
        image_size: int, output side length.
        seed: int `[2]` stateless seed.
        scale: `(min, max)` area fraction of the crop (default 0.08..1).
        ratio: `(min, max)` aspect ratio of the crop (default 3/4..4/3).

    Returns:
        float32 `[image_size, image_size, 3]`.
    """
    return _resized_crops(image, image_size, [seed], scale, ratio)[0]


def _resized_crops(image, image_size, seeds, scale, ratio=CROP_ASPECT_RATIO):
    """`random_resized_crop` for each of `seeds`, decoding encoded bytes once: a list."""

    def windows(shape):
        boxes = []
        for seed in seeds:
            begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
                shape,
                bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
                seed=seed,
                min_object_covered=scale[0],
                aspect_ratio_range=ratio,
                area_range=scale,
                max_attempts=100,
                use_image_if_no_bounding_boxes=True,
            )
            boxes.append((begin, size))
        return boxes

    if image.dtype == tf.string:
        crops = _decode.decode_windows(image, windows)
    else:
        crops = [tf.slice(image, begin, size) for begin, size in windows(tf.shape(image))]
    return [tf.ensure_shape(tf.image.resize(tf.cast(crop, tf.float32), [image_size, image_size],
                                            method="bilinear"), [image_size, image_size, 3])
            for crop in crops]


def crop_views(image, image_size, seeds, scale=PAPER_CROP_SCALE):
    """A policy's first stage alone, for several views of one image: their random resized crops.

    Encoded bytes are decoded once for all the views (a JPEG inside the union of their
    windows only), which a policy called once per view cannot do.

    Args:
        image: as for `random_resized_crop` (decoded, or encoded bytes).
        image_size: int, output side length.
        seeds: list of V int `[2]` seeds, the views' seeds (the policy's `seed` of each).
        scale: `(min, max)` area fraction of the crop.

    Returns:
        float32 `[V, image_size, image_size, 3]`, the crops that `get_augmentation`'s
        policies start from.
    """
    return tf.stack(_resized_crops(
        image, image_size, [_seeds.fold_in(seed, _STAGE_TAGS["crop"]) for seed in seeds], scale))


def eval_preprocess(image, image_size):
    """Resizes the shorter side and center-crops: identity for `image_size`² inputs.

    Images of side `LARGE_IMAGE_SIZE` (128) or more: shorter side to
    `image_size + 32` (256 for 224), then a central `image_size` crop (the ImageNet
    convention). Smaller sizes: shorter side to `image_size`, then the central crop.

    Args:
        image: `[H, W, 3]`, uint8 or float32, values 0..255, or a scalar `tf.string` of
            encoded image bytes.
        image_size: int, output side length.

    Returns:
        float32 `[image_size, image_size, 3]`, values 0..255.
    """
    if image.dtype == tf.string:
        image = _decode.decode(image)
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


def _coin(seed, shape, probability):
    """bool `shape`, each true with probability `probability` (`uniform < p`, stateless)."""
    return tf.random.stateless_uniform(shape, seed=seed) < probability


def _where_images(mask, images, static_shapes, function, *args):
    """`function(images, *args)` where `mask` is true, `images` elsewhere: one image or a batch.

    One image `[H, W, C]` with a scalar `mask` (and its own `args`): a `tf.cond`, so the
    function runs only when the coin says so. A batch `[N, H, W, C]` with `mask` `[N]` (and
    `args` with a leading `N`): with `static_shapes=False` the function sees the selected
    images only (a gather and scatter of dynamic size: its work is done once per selected
    image); with True it runs on all of them and a select keeps its outputs where `mask`
    is true (the shapes XLA compiles).
    """
    if mask.shape.rank == 0:
        out = tf.cond(mask, lambda: function(images, *args), lambda: images)
        return tf.ensure_shape(out, images.shape)
    if static_shapes:
        return tf.where(mask[:, None, None, None], function(images, *args), images)

    def some():
        index = tf.where(mask)
        selected = function(tf.gather_nd(images, index), *(tf.gather_nd(a, index) for a in args))
        return tf.tensor_scatter_nd_update(images, index, selected)

    # None selected: the images as they are (ops such as the blur's reflecting pad refuse an
    # empty batch).
    return tf.ensure_shape(tf.cond(tf.reduce_any(mask), some, lambda: images), images.shape)


# --- Colour jitter (torchvision ColorJitter semantics, on 0..255 floats) ---------------


def _gray(image):
    """ITU-R 601 luma `[..., H, W]` of float32 images `[..., H, W, 3]`."""
    return tf.tensordot(image, tf.constant(LUMA_WEIGHTS, tf.float32), axes=[[-1], [0]])


def _grayscale(image):
    """The luma of `image` repeated on 3 channels (torchvision `rgb_to_grayscale`, 3 outputs)."""
    return tf.ensure_shape(tf.broadcast_to(_gray(image)[..., None], tf.shape(image)),
                           image.shape)


def _blend(image, other, factor):
    """torchvision `_blend`: `factor * image + (1 - factor) * other`, clipped to 0..255."""
    return tf.clip_by_value(factor * image + (1.0 - factor) * other, 0.0, 255.0)


def _adjust_brightness(image, factor):
    return _blend(image, 0.0, factor)


def _adjust_contrast(image, factor):
    # One mean per image: `[..., 1, 1, 1]` for images `[..., H, W, 3]`.
    return _blend(image, tf.reduce_mean(_gray(image), axis=[-2, -1], keepdims=True)[..., None],
                  factor)


def _adjust_saturation(image, factor):
    return _blend(image, _gray(image)[..., None], factor)


def _adjust_hue(image, shift):
    # tf.image's HSV conversions take RGB in 0..1; H is a fraction of the circle, and
    # floormod is torchvision's `(h + hue_factor) % 1.0` (also for negative shifts).
    hsv = tf.image.rgb_to_hsv(image / 255.0)
    hue = tf.math.floormod(hsv[..., 0] + shift, 1.0)
    rgb = tf.image.hsv_to_rgb(tf.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1))
    return tf.clip_by_value(rgb * 255.0, 0.0, 255.0)


# In the order of the factors: brightness, contrast, saturation, hue.
_JITTER_OPS = (_adjust_brightness, _adjust_contrast, _adjust_saturation, _adjust_hue)


def _jitter_params(seed, strength, shape=()):
    """Draws the jitter's factors and order for strength `strength` (torchvision ranges).

    Args:
        seed: int `[2]` stateless seed.
        strength: Python float s.
        shape: leading shape: `()` for one image, `(n,)` for n images from one seed (the
            first image's draws are those of `shape=()`).

    Returns:
        `(factors, order)`: float32 `shape + [4]` brightness, contrast, saturation factors
        in U[max(0, 1 - 0.8 s), 1 + 0.8 s] and hue shift in U[-0.2 s, 0.2 s]; int32
        `shape + [4]`, a uniformly random permutation of the four ops (torchvision's
        `randperm(4)`).
    """
    shape = list(shape) + [len(_JITTER_OPS)]
    brightness, contrast, saturation, hue = (strength * k for k in COLOR_JITTER_PER_STRENGTH)
    low = tf.constant([max(0.0, 1.0 - brightness), max(0.0, 1.0 - contrast),
                       max(0.0, 1.0 - saturation), -hue], tf.float32)
    high = tf.constant([1.0 + brightness, 1.0 + contrast, 1.0 + saturation, hue], tf.float32)
    factors = low + (high - low) * tf.random.stateless_uniform(shape, seed=_seeds.fold_in(seed, 0))
    order = tf.argsort(tf.random.stateless_uniform(shape, seed=_seeds.fold_in(seed, 1)), axis=-1)
    return factors, tf.cast(order, tf.int32)


def _color_jitter(image, factors, order, static_shapes=False):
    """Applies the four jitter ops with `factors` (b, c, s, h) in the op order `order`.

    One image: at each of the four positions, a `tf.switch_case` runs the op functions
    above (`_JITTER_OPS`). A batch, each image with its own factors and order: at each
    position the three blends (brightness, contrast, saturation: `_blend` of the image with
    0, the mean luma or the luma) are one `_blend` whose reference and factor are picked per
    image, and the hue shift runs on the images whose op at that position is the hue. So
    every image gets each op once, with the arithmetic of the op functions.

    Args:
        image: float32 `[H, W, 3]` or a batch `[N, H, W, 3]`, values 0..255.
        factors: float32 `[4]` / `[N, 4]`.
        order: int32 `[4]` / `[N, 4]`, a permutation of 0..3 per image.
        static_shapes: for a batch: False (default): the hue runs on the images that need
            it only (a gather of dynamic size); True: on all, keeping those that need it
            (the shapes XLA compiles, at 4x the hue's work).

    Returns:
        float32, the shape of `image`.
    """
    factors = tf.cast(factors, tf.float32)
    if len(image.shape) == 3:
        for position in range(len(_JITTER_OPS)):
            branches = [lambda im=image, k=k: _JITTER_OPS[k](im, factors[k])
                        for k in range(len(_JITTER_OPS))]
            image = tf.ensure_shape(tf.switch_case(order[position], branches), image.shape)
        return image
    hue_op = len(_JITTER_OPS) - 1
    for position in range(len(_JITTER_OPS)):
        op = order[:, position]
        # The blend factor of the image's op (1 for the hue: clip(x) = x on 0..255 images).
        factor = tf.where(op == hue_op, 1.0, tf.gather(factors, op, batch_dims=1))
        gray = _gray(image)[..., None]
        mean = tf.reduce_mean(gray, axis=[1, 2, 3], keepdims=True)
        reference = tf.where((op == 1)[:, None, None, None], mean,
                             tf.where((op == 2)[:, None, None, None], gray, 0.0))
        image = _blend(image, reference, factor[:, None, None, None])
        image = _where_images(op == hue_op, image, static_shapes,
                              lambda x, s: _adjust_hue(x, s[:, None, None]), factors[:, hue_op])
    return image


# The host pipeline's per-image colour stages, compiled with XLA. Measured at 224 px on this
# project's 2-core CPU (one image, `tf.function`): the colour jitter 0.9-1.1 ms compiled against
# 3.7-3.8 ms as TensorFlow ops (its dozen elementwise passes and the hue's HSV round trip fuse
# into a few loops), in a `tf.data` map too; the blur below 1.1-1.2 ms against 1.45-1.7 ms. Together
# they were most of the host's SimAugment. The values are the same arithmetic; XLA may fuse
# multiply-adds and the blur sums its taps in another order, so they differ from the
# uncompiled ops by float32 rounding (the tests compare both forms with the NumPy references
# at one tolerance). A view is still a function of its seed and image: the same compiled
# computation on the same machine. Each image size compiles once per process (the jitter ~1 s
# at 16-64 px, 2 s at 128, ~5 s at 224 px), so images smaller than `_MIN_COMPILED_JITTER_PIXELS`
# keep the TensorFlow ops: there the compiled jitter measured no faster (16 px: 0.40 vs 0.37 ms;
# 32 px: 0.41 vs 0.43 ms; 64 px: 0.59 vs 0.88 ms; 128 px: 0.62 vs 1.76 ms). Batches
# (`--augment_on=device`) keep the TensorFlow ops too: they run inside the training step,
# compiled or not as the step is.
_compiled_color_jitter = tf.function(_color_jitter, jit_compile=True)
_MIN_COMPILED_JITTER_PIXELS = 64 * 64


def _jitter_for(images):
    """The colour jitter function for `images`: compiled for one image of 64x64 or more."""
    if len(images.shape) != 3:
        return _color_jitter
    height, width = images.shape[0], images.shape[1]
    if height is not None and width is not None and height * width < _MIN_COMPILED_JITTER_PIXELS:
        return _color_jitter
    return _compiled_color_jitter


def _gaussian_taps(sigma, kernel_size):
    """float32 `[N, kernel_size]`: the normalized Gaussian kernel of each of the `N` sigmas."""
    radius = kernel_size // 2
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    taps = tf.exp(-0.5 * tf.square(x[None] / tf.reshape(tf.cast(sigma, tf.float32), [-1, 1])))
    return taps / tf.reduce_sum(taps, axis=1, keepdims=True)


@tf.function(jit_compile=True)
def _blur_one_image(image, sigma, kernel_size):
    """`gaussian_blur` of one `[H, W, C]` image: sums of shifted slices, compiled with XLA.

    The kernel is symmetric, so each pass is `w_0 x + sum_d w_d (x[+d] + x[-d])`, elementwise
    work XLA fuses. (XLA's CPU depthwise convolution, the batched path's op, measured 17x
    slower than TensorFlow's: compiling `gaussian_blur`'s batched form was no option here.)
    """
    radius = kernel_size // 2
    taps = _gaussian_taps(sigma, kernel_size)[0]
    height, width = tf.shape(image)[0], tf.shape(image)[1]  # Constants to XLA, per compiled shape.
    padded = tf.pad(image, [[radius, radius], [radius, radius], [0, 0]], mode="REFLECT")

    def one_pass(x, take):
        total = taps[radius] * take(x, radius)
        for d in range(1, radius + 1):
            total += taps[radius + d] * (take(x, radius + d) + take(x, radius - d))
        return total

    rows = one_pass(padded, lambda x, start: x[start:start + height])
    return one_pass(rows, lambda x, start: x[:, start:start + width])


def gaussian_blur(image, sigma, kernel_size):
    """Separable Gaussian blur of an `[H, W, 3]` image or a batch (reflect-padded borders).

    Hand-written instead of `keras.layers.RandomGaussianBlur`, which convolves with the
    full 2-D kernel and always computes the blurred image: at 224 px with SimCLR's
    23-tap kernel that made SimAugment ~10x slower than the rest of the policy. One image
    (the host pipeline) is `_blur_one_image`, compiled; a batch is one depthwise
    convolution whose channels are the images' channels (each image its own kernel).

    Args:
        image: float32 `[H, W, 3]`, or `[N, H, W, 3]`.
        sigma: float, the standard deviation in pixels: a scalar, or `[N]` for a batch.
        kernel_size: odd Python int.

    Returns:
        float32, the shape of `image`.
    """
    if len(image.shape) == 3:
        # A tensor sigma: a Python float would trace (and compile) once per value.
        sigma = tf.convert_to_tensor(sigma, tf.float32)
        return tf.ensure_shape(_blur_one_image(image, sigma, kernel_size), image.shape)
    radius = kernel_size // 2
    kernel = tf.broadcast_to(_gaussian_taps(sigma, kernel_size), [tf.shape(image)[0], kernel_size])
    kernel = tf.repeat(tf.transpose(kernel), 3, axis=1)  # [kernel_size, N * 3], image-major.
    shape = tf.shape(image)
    padded = tf.pad(image, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    # [N, H', W', 3] -> [1, H', W', N * 3]: the images side by side as channels.
    stacked = tf.reshape(tf.transpose(padded, [1, 2, 0, 3]),
                         [1, shape[1] + 2 * radius, shape[2] + 2 * radius, -1])
    blurred = tf.nn.depthwise_conv2d(stacked, kernel[:, None, :, None], [1, 1, 1, 1], "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, kernel[None, :, :, None], [1, 1, 1, 1], "VALID")
    blurred = tf.transpose(tf.reshape(blurred[0], [shape[1], shape[2], shape[0], 3]), [2, 0, 1, 3])
    return tf.ensure_shape(blurred, image.shape)


def _blur_kernel_size(blur, image_size):
    """The blur kernel size, or None when the policy does not blur (`blur` already checked)."""
    if blur is None:  # The older forms: None, True, False.
        blur = "auto"
    elif isinstance(blur, bool):
        blur = "on" if blur else "off"
    if blur == "off" or (blur == "auto" and image_size < LARGE_IMAGE_SIZE):
        return None
    # ~10% of the side, odd (SimCLR: kernel_size = image_size // 10, radius = size // 2).
    return max(3, (image_size // 10) // 2 * 2 + 1)


# The stages after the crop that run on one image or on a batch with per-image parameters
# (`_draw_stage`, `_apply_stage`), of the policies made of them alone, in order
# (`supcon.data.batch_augment` runs these policies' stages batched).
_PIXEL_STAGES = {"crop_flip": ("flip",),
                 "simaugment": ("flip", "color_jitter", "grayscale", "blur")}


def _draw_stage(name, seed, shape, color_jitter_strength):
    """The random parameters of stage `name` (of `_PIXEL_STAGES`) for `shape` images.

    Args:
        name: `"flip"`, `"color_jitter"`, `"grayscale"` or `"blur"`.
        seed: int `[2]`, the stage's stateless seed (its tag folded into the view's seed).
        shape: `()` for one image, `(n,)` for n images from one seed (the first image's
            draws are those of `shape=()`).
        color_jitter_strength: Python float s.

    Returns:
        dict of tensors with leading shape `shape`: `flip` bool (p 1/2); `jitter` bool
        (p 0.8; never for s = 0), `factors` float32 `[..., 4]`, `order` int32 `[..., 4]`;
        `grayscale` bool (p 0.2); `blur` bool (p 0.5), `sigma` float32 in 0.1..2.0.
    """
    shape = list(shape)
    if name == "flip":
        return {"flip": _coin(seed, shape, FLIP_PROBABILITY)}
    if name == "color_jitter":
        jitter = _coin(_seeds.fold_in(seed, 0), shape, COLOR_JITTER_PROBABILITY)
        if color_jitter_strength == 0:  # Every factor is the identity (torchvision skips such ops).
            jitter = tf.zeros(shape, tf.bool)
        factors, order = _jitter_params(_seeds.fold_in(seed, 1), color_jitter_strength, shape)
        return {"jitter": jitter, "factors": factors, "order": order}
    if name == "grayscale":
        return {"grayscale": _coin(seed, shape, GRAYSCALE_PROBABILITY)}
    return {"blur": _coin(_seeds.fold_in(seed, 0), shape, BLUR_PROBABILITY),
            "sigma": tf.random.stateless_uniform(shape, seed=_seeds.fold_in(seed, 1),
                                                 minval=BLUR_SIGMA[0], maxval=BLUR_SIGMA[1])}


def _apply_stage(name, images, params, *, kernel_size=None, static_shapes=False):
    """Stage `name` with parameters `params` from `_draw_stage`, on one image or a batch.

    Args:
        name: `"flip"`, `"color_jitter"`, `"grayscale"` or `"blur"`.
        images: float32 `[H, W, 3]` with params of shape `()`, or `[N, H, W, 3]` with params
            of leading shape `[N]`, values 0..255.
        params: dict, the stage's entries of `_draw_stage`.
        kernel_size: odd int, the blur's kernel (the blur stage only).
        static_shapes: for a batch, True to run an op on all images and select (the
            shapes XLA compiles) instead of on the drawn ones only (`_where_images`).

    Returns:
        float32, the shape of `images`.
    """
    if name == "flip":  # A select on a batch: a reversal costs less than a gather.
        return _where_images(params["flip"], images, True, lambda x: tf.reverse(x, axis=[-2]))
    if name == "color_jitter":
        jitter = _jitter_for(images)
        return _where_images(params["jitter"], images, static_shapes,
                             lambda x, f, o: jitter(x, f, o, static_shapes),
                             params["factors"], params["order"])
    if name == "grayscale":  # A select on a batch, as for the flip.
        return _where_images(params["grayscale"], images, True, _grayscale)
    return _where_images(params["blur"], images, static_shapes,
                         lambda x, sigma: gaussian_blur(x, sigma, kernel_size), params["sigma"])


def _stages(name, image_size, *, num_ops, magnitude, blur, color_jitter_strength):
    """The policy `name` after its crop, an ordered list of `(stage name, (image, seed) -> image)`.

    Orders (google-research SupCon `preprocessing._preprocess_image_for_train`, which
    crops and flips before `_simclr_augment` / `_stacked_simclr_randaugment`), after the
    random resized crop:
      * `crop_flip`: flip.
      * `simaugment`: flip, colour jitter (p 0.8), grayscale (p 0.2), blur (p 0.5).
      * `stacked_randaugment`: flip, colour jitter (p 0.8), RandAugment(N, M),
        grayscale (p 0.2), blur (p 0.5).
      * `autoaugment` / `randaugment`: flip, AutoAugment / RandAugment(N, M).
    The blur stage is left out when `blur` says so (see `get_augmentation`).
    """
    kernel_size = _blur_kernel_size(blur, image_size)

    def pixel_stage(stage_name):
        def stage(image, seed):
            params = _draw_stage(stage_name, seed, (), color_jitter_strength)
            return _apply_stage(stage_name, image, params, kernel_size=kernel_size)
        return stage

    def auto_augment(image, seed):
        return _autoaugment.auto_augment(image, seed)

    def rand_augment(image, seed):
        return _autoaugment.rand_augment(image, seed, num_ops=num_ops, magnitude=magnitude)

    names = ["flip"]
    if name in ("autoaugment", "randaugment"):
        names.append(name)
    elif name in ("simaugment", "stacked_randaugment"):
        names.append("color_jitter")
        if name == "stacked_randaugment":
            names.append("randaugment")
        names.append("grayscale")
        if kernel_size is not None:
            names.append("blur")
    functions = {"autoaugment": auto_augment, "randaugment": rand_augment}
    return [(stage_name, functions.get(stage_name) or pixel_stage(stage_name))
            for stage_name in names]


def _after_crop(name, image_size, *, num_ops, magnitude, blur, color_jitter_strength):
    """The policy `name` after its crop: `(crop float32 [S, S, 3], view seed) -> view`.

    The arguments are `get_augmentation`'s, already checked there.
    """
    stages = _stages(name, image_size, num_ops=num_ops, magnitude=magnitude, blur=blur,
                     color_jitter_strength=float(color_jitter_strength))

    def finish(view, seed):
        for stage_name, stage in stages:
            view = stage(view, _seeds.fold_in(seed, _STAGE_TAGS[stage_name]))
        view = tf.clip_by_value(tf.cast(view, tf.float32), 0.0, 255.0)
        return tf.ensure_shape(view, [image_size, image_size, 3])

    return finish


def get_augmentation(name, image_size, *, crop_scale=PAPER_CROP_SCALE, num_ops=2,
                     magnitude=9, blur="auto",
                     color_jitter_strength=DEFAULT_COLOR_JITTER_STRENGTH):
    """Builds a training augmentation policy `(image, seed) -> view`.

    Policies (Khosla et al. 2020, arXiv 2004.11362, §4 and Appendix; orders as in
    google-research's SupCon `preprocessing.py`):
      * `"simaugment"`: random resized crop (`crop_scale`), horizontal flip, colour jitter
        of strength `color_jitter_strength` with p=0.8, grayscale with p=0.2, Gaussian
        blur with p=0.5 (per `blur`).
      * `"autoaugment"`: random resized crop, flip, AutoAugment's ImageNet policy.
      * `"randaugment"`: random resized crop, flip, RandAugment(`num_ops`, `magnitude`).
      * `"stacked_randaugment"`: random resized crop, flip, colour jitter (p=0.8),
        RandAugment(`num_ops`, `magnitude`), grayscale (p=0.2), blur (p=0.5, per `blur`).
      * `"crop_flip"`: random resized crop and horizontal flip only (torchvision
        `RandomResizedCrop` + `RandomHorizontalFlip`, the reference code's cross-entropy
        and linear-classifier training images).
      * `"none"`: the eval preprocessing (`eval_preprocess`); all views are equal.
    Arguments a policy has no stage for (e.g. `blur` for `randaugment`) are checked but
    do not change it.

    Args:
        name: one of `AUGMENTATIONS`.
        image_size: int, output side length.
        crop_scale: `(min, max)` area fraction of the random resized crop (default 0.08..1).
        num_ops: RandAugment's N, an int >= 0 (default 2).
        magnitude: RandAugment's M on the 0..10 scale (default 9).
        blur: Gaussian blur in `simaugment` / `stacked_randaugment`: `"auto"` (default;
            only if `image_size >= 128`), `"on"` or `"off"`; `None`, `True`, `False` are
            accepted for `"auto"`, `"on"`, `"off"`.
        color_jitter_strength: SimCLR's colour strength s in `[0, 2.5]`: brightness,
            contrast, saturation, hue jitter of 0.8 s, 0.8 s, 0.8 s, 0.2 s (default 0.5,
            torchvision `ColorJitter(0.4, 0.4, 0.4, 0.1)` of the SupCon CIFAR code;
            2.5 puts the hue range at torchvision's limit of 0.5).

    Returns:
        A function `(image [H, W, 3] uint8/float32 0..255, seed int [2]) -> float32
        [image_size, image_size, 3] 0..255`, made of stateless TF ops (usable in
        `tf.data.Dataset.map`). `image` may also be a scalar `tf.string` of encoded bytes:
        a JPEG is then decoded inside the crop window only.

    Example:
        >>> policy = get_augmentation("simaugment", 32)
        >>> view = policy(tf.zeros([32, 32, 3], tf.uint8), tf.constant([0, 1]))
        >>> view.shape
        TensorShape([32, 32, 3])
    """
    if name not in AUGMENTATIONS:
        raise ValueError(f"`augmentation` must be one of {AUGMENTATIONS}. Received: "
                         f"augmentation={name!r}")
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size}")
    if len(crop_scale) != 2 or not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError("`crop_scale` must be (min, max) with 0 < min <= max <= 1. "
                         f"Received: crop_scale={crop_scale}")
    if not (blur is None or isinstance(blur, bool) or blur in BLUR_CHOICES):
        raise ValueError(f"`blur` must be one of {BLUR_CHOICES} (or None, True, False). "
                         f"Received: blur={blur!r}")
    max_strength = MAX_HUE_SHIFT / COLOR_JITTER_PER_STRENGTH[3]
    if (isinstance(color_jitter_strength, bool)
            or not isinstance(color_jitter_strength, numbers.Real)
            or not 0.0 <= color_jitter_strength <= max_strength):
        raise ValueError(f"`color_jitter_strength` must be a number in [0, {max_strength:g}] "
                         "(hue jitter 0.2 s up to half the colour circle). "
                         f"Received: color_jitter_strength={color_jitter_strength!r}")
    if name in ("randaugment", "stacked_randaugment"):
        if not 0 <= magnitude <= _autoaugment.RANDAUGMENT_MAX_MAGNITUDE:
            raise ValueError(f"`magnitude` must be in [0, 10]. Received: magnitude={magnitude}")
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
            raise ValueError(f"`num_ops` must be an int >= 0. Received: num_ops={num_ops!r}")
    if name == "none":
        return lambda image, seed: eval_preprocess(image, image_size)

    finish = _after_crop(name, image_size, num_ops=num_ops, magnitude=magnitude, blur=blur,
                         color_jitter_strength=color_jitter_strength)

    def policy(image, seed):
        return finish(crop_views(image, image_size, [seed], crop_scale)[0], seed)

    return policy
