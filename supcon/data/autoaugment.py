"""AutoAugment (ImageNet policy) and RandAugment(N, M), composed from library ops.

* AutoAugment: Cubuk et al., "AutoAugment: Learning Augmentation Policies from Data",
  arXiv 1805.09501, Appendix Table 9 (the ImageNet policy; 25 sub-policies of two
  `(op, probability, magnitude bin)` steps). One sub-policy is drawn per image.
* RandAugment: Cubuk et al., "RandAugment", arXiv 1909.13719, §3: N ops drawn
  uniformly (with replacement) from 14 ops, each at the same magnitude M.

Magnitudes follow the published ranges, with a random sign for signed ops:
rotate ±30°, shear ±0.3, translate ±150/331 of the image side, color/contrast/
brightness/sharpness enhancement factor 1 ± 0.9, posterize 8 → 4 bits, solarize
threshold 255 → 0. AutoAugment magnitudes are bins 0..9 of those ranges (fraction
m / 9, as in the paper's table); RandAugment's M is on TF's 0..10 scale (fraction M / 10).

Where each op comes from:
  * Equalize, AutoContrast: `keras.layers.Equalization`, `keras.layers.AutoContrast`
    (deterministic layers).
  * Posterize: a hand-written two-liner (floor to a multiple of 2^(8-bits)), because
    the bit depth is a tensor here (read from the policy table) and
    `keras.layers.RandomPosterization` takes it as a Python constant.
  * Rotate, ShearX/Y, TranslateX/Y: `keras.ops.image.affine_transform` with a fixed
    matrix. Keras' `RandomRotation`/`RandomShear`/`RandomTranslation` draw a magnitude
    from a range; AutoAugment needs one fixed magnitude with a random sign.
  * Color, Contrast, Brightness, Sharpness: PIL's `ImageEnhance` blend
    `degenerate + factor * (image - degenerate)`, written with `keras.ops` (Keras'
    `RandomBrightness` is additive and `RandomColorDegeneration` cannot over-saturate,
    so neither reproduces factors above 1).
  * Solarize, Invert, Identity: one-line `keras.ops` expressions.
  * `keras.layers.RandAugment` is not used: it draws the same ops for a whole batch,
    samples magnitudes from a range, and ignores a per-call seed, so it cannot be made
    deterministic inside a parallel `tf.data` map. keras-cv 0.9's `RandAugment` has the
    same stateful-generator problem.
Randomness (which sub-policy, whether an op fires, signs) uses stateless TF ops.
"""

import functools
import math

import keras
import tensorflow as tf

from supcon.data import _seeds

FILL_VALUE = 128.0  # Gray fill for pixels moved in by geometric ops (AutoAugment's PIL code).
ROTATE_MAX_DEGREES = 30.0  # Cubuk et al. 2018, Table 1 (arXiv 1805.09501).
SHEAR_MAX = 0.3
TRANSLATE_MAX_FRACTION = 150.0 / 331.0  # 150 px on their 331 px images.
ENHANCE_MAX_DELTA = 0.9  # Enhancement factors 0.1 .. 1.9.
AUTOAUGMENT_MAGNITUDE_BINS = 9  # Magnitudes 0..9 in the policy table.
RANDAUGMENT_MAX_MAGNITUDE = 10  # TF's RandAugment scale (arXiv 1909.13719 §3).

# Cubuk et al. 2018 (arXiv 1805.09501), Appendix Table 9: ImageNet policy.
# Each sub-policy: ((op, probability, magnitude bin), (op, probability, magnitude bin)).
IMAGENET_POLICY = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
)

# Cubuk et al. 2019 (arXiv 1909.13719), §3: the 14 RandAugment transformations.
RANDAUGMENT_OPS = (
    "Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Posterize",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
)

_VALUE_RANGE = (0, 255)
_LAYER_CLASSES = {"equalize": keras.layers.Equalization, "auto_contrast": keras.layers.AutoContrast}
_LAYERS = {}  # Deterministic Keras layers, created on first use (not at import time).


def _layer(key):
    """The shared Keras layer for `key` ("equalize" or "auto_contrast")."""
    if key not in _LAYERS:
        with tf.init_scope():  # Build outside the traced map function.
            _LAYERS[key] = _LAYER_CLASSES[key](value_range=_VALUE_RANGE)
    return _LAYERS[key]


def _signed(value, seed):
    """`value` with a random sign (stateless coin)."""
    coin = tf.random.stateless_uniform([], seed=seed)
    return tf.where(coin < 0.5, -value, value)


def _affine(image, transform):
    """Applies the 8-parameter output->input `transform` to an `[H, W, 3]` image."""
    out = keras.ops.image.affine_transform(
        image[None], tf.reshape(transform, [1, 8]), interpolation="bilinear",
        fill_mode="constant", fill_value=FILL_VALUE)
    return out[0]


def _rotate(image, degrees):
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    angle = degrees * math.pi / 180.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # Input = R (output - center) + center.
    return _affine(image, tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                                    sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]))


def _blend(degenerate, image, factor):
    """PIL ImageEnhance: `degenerate + factor * (image - degenerate)`, clipped to 0..255."""
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _grayscale(image):
    return tf.image.grayscale_to_rgb(keras.ops.image.rgb_to_grayscale(image))


def _smooth(image):
    """PIL's SMOOTH filter `[[1,1,1],[1,5,1],[1,1,1]] / 13` (borders reflect-padded)."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]


def apply_op(image, name, fraction, seed):
    """Applies one AutoAugment/RandAugment op at a fixed strength.

    Each op is a `tf.function` traced once per process and called from every branch,
    view and pipeline (inlining them made a RandAugment pipeline take ~10 s to trace).

    Args:
        image: float32 `[H, W, 3]`, values 0..255.
        name: op name, one of `RANDAUGMENT_OPS` or `"Invert"`.
        fraction: float (Python or scalar tensor) in `[0, 1]`, the magnitude as a
            fraction of the op's range.
        seed: int `[2]` stateless seed (for the sign of signed ops).

    Returns:
        float32 `[H, W, 3]`, values 0..255.
    """
    if name not in _OP_NAMES:
        raise ValueError(f"Unknown augmentation op. Received: name={name}")
    image = tf.convert_to_tensor(image)
    out = _op_function(name)(tf.cast(image, tf.float32), tf.cast(fraction, tf.float32),
                             tf.cast(seed, tf.int64))
    return tf.ensure_shape(out, image.shape)


_OP_NAMES = RANDAUGMENT_OPS + ("Invert",)


@functools.lru_cache(maxsize=None)
def _op_function(name):
    return tf.function(
        functools.partial(_apply_op, name=name),
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32),
                         tf.TensorSpec([], tf.float32), tf.TensorSpec([2], tf.int64)])


def _apply_op(image, fraction, seed, *, name):
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    enhance = 1.0 + _signed(ENHANCE_MAX_DELTA * fraction, seed)
    if name == "Identity":
        return image
    if name == "AutoContrast":
        return _layer("auto_contrast")(image)
    if name == "Equalize":
        return _layer("equalize")(image)
    if name == "Invert":
        return 255.0 - image
    if name == "Posterize":
        shift = 2.0 ** tf.round(4.0 * fraction)  # 8 -> 4 bits: keep the top 8 - round(4f).
        return tf.floor(image / shift) * shift
    if name == "Solarize":
        threshold = 255.0 * (1.0 - fraction)
        return tf.where(image < threshold, image, 255.0 - image)
    if name == "Rotate":
        return _rotate(image, _signed(ROTATE_MAX_DEGREES * fraction, seed))
    if name == "ShearX":
        shear = _signed(SHEAR_MAX * fraction, seed)
        return _affine(image, tf.stack([1.0, shear, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    if name == "ShearY":
        shear = _signed(SHEAR_MAX * fraction, seed)
        return _affine(image, tf.stack([1.0, 0.0, 0.0, shear, 1.0, 0.0, 0.0, 0.0]))
    if name == "TranslateX":
        shift = _signed(TRANSLATE_MAX_FRACTION * fraction, seed) * size[1]
        return _affine(image, tf.stack([1.0, 0.0, shift, 0.0, 1.0, 0.0, 0.0, 0.0]))
    if name == "TranslateY":
        shift = _signed(TRANSLATE_MAX_FRACTION * fraction, seed) * size[0]
        return _affine(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, shift, 0.0, 0.0]))
    if name == "Color":
        return _blend(_grayscale(image), image, enhance)
    if name == "Contrast":
        mean = tf.reduce_mean(keras.ops.image.rgb_to_grayscale(image))
        return _blend(tf.fill(tf.shape(image), mean), image, enhance)
    if name == "Brightness":
        return _blend(tf.zeros_like(image), image, enhance)
    if name == "Sharpness":
        return _blend(_smooth(image), image, enhance)
    raise ValueError(f"Unknown augmentation op. Received: name={name}")


def auto_augment(image, seed, policy=IMAGENET_POLICY):
    """AutoAugment: applies one uniformly drawn sub-policy of `policy` (arXiv 1805.09501).

    The table is turned into tensors, so each step is one `tf.switch_case` over the op
    names with the magnitude as a tensor (a graph with one branch per table entry takes
    ~30 s to trace).

    Args:
        image: float32 `[H, W, 3]`, values 0..255.
        seed: int `[2]` stateless seed.
        policy: sequence of sub-policies, each a sequence of `(op, probability, bin)`
            of the same length; default the paper's ImageNet policy (Appendix Table 9).

    Returns:
        float32 `[H, W, 3]`, values 0..255.

    Example:
        >>> out = auto_augment(tf.zeros([32, 32, 3]), tf.constant([1, 2]))
    """
    names = sorted({name for sub_policy in policy for name, _, _ in sub_policy})
    ops = tf.constant([[names.index(n) for n, _, _ in sp] for sp in policy], tf.int32)
    probabilities = tf.constant([[p for _, p, _ in sp] for sp in policy], tf.float32)
    fractions = tf.constant([[m / AUTOAUGMENT_MAGNITUDE_BINS for _, _, m in sp]
                             for sp in policy], tf.float32)
    image = tf.cast(image, tf.float32)
    choice = tf.random.stateless_uniform(
        [], seed=_seeds.fold_in(seed, 0), maxval=len(policy), dtype=tf.int32)
    out = image
    for step in range(len(policy[0])):
        op_seed = _seeds.fold_in(seed, 1, step)
        fire = tf.random.stateless_uniform([], seed=_seeds.fold_in(op_seed, 1))
        fraction = fractions[choice, step]

        def apply(o=out, s=op_seed, f=fraction, k=step):
            branches = [lambda n=n: apply_op(o, n, f, s) for n in names]
            return tf.switch_case(ops[choice, k], branches)

        out = tf.cond(fire < probabilities[choice, step], apply, lambda o=out: o)
        out = tf.ensure_shape(out, image.shape)
    return out


def rand_augment(image, seed, num_ops=2, magnitude=9):
    """RandAugment(N, M): `num_ops` ops drawn uniformly, each at magnitude M (arXiv 1909.13719 §3).

    Args:
        image: float32 `[H, W, 3]`, values 0..255.
        seed: int `[2]` stateless seed.
        num_ops: N, the number of ops applied in sequence (default 2).
        magnitude: M in `[0, 10]` (default 9, the paper's ImageNet ResNet-50 value).

    Returns:
        float32 `[H, W, 3]`, values 0..255.

    Example:
        >>> out = rand_augment(tf.zeros([32, 32, 3]), tf.constant([1, 2]), num_ops=2, magnitude=9)
    """
    if not 0 <= magnitude <= RANDAUGMENT_MAX_MAGNITUDE:
        raise ValueError(f"`magnitude` must be in [0, {RANDAUGMENT_MAX_MAGNITUDE}]. "
                         f"Received: magnitude={magnitude}")
    if num_ops < 0:
        raise ValueError(f"`num_ops` must be >= 0. Received: num_ops={num_ops}")
    fraction = magnitude / RANDAUGMENT_MAX_MAGNITUDE
    out = tf.cast(image, tf.float32)
    for step in range(num_ops):
        op_seed = _seeds.fold_in(seed, step)
        choice = tf.random.stateless_uniform(
            [], seed=_seeds.fold_in(op_seed, 0), maxval=len(RANDAUGMENT_OPS), dtype=tf.int32)
        branches = [lambda o=out, n=name: apply_op(o, n, fraction, op_seed)
                    for name in RANDAUGMENT_OPS]
        out = tf.ensure_shape(tf.switch_case(choice, branches), image.shape)
    return out
