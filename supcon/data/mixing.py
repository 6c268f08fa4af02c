"""MixUp and CutMix applied to each view independently, producing label distributions.

GenSCL (Kim et al., arXiv 2206.00384, §3.2) trains on mixed images whose labels are
distributions; with V views each view is mixed with its own partner permutation and
weight, so a batch's labels are `[B, V, C]`, each row summing to 1.

* MixUp (Zhang et al., arXiv 1710.09412): `keras.layers.MixUp(alpha)`;
  `x = w x_i + (1 - w) x_j`, `w ~ Beta(alpha, alpha)`, `y = w y_i + (1 - w) y_j`.
* CutMix (Yun et al., arXiv 1905.04899): `keras.layers.CutMix(factor=(alpha, alpha))`;
  a box of area fraction `1 - w` is pasted from the partner, `w` is recomputed from the
  box (Keras computes it from the continuous box, so it can differ from the pixel
  fraction by a rounding of one row/column).
* Both on: per view and batch, a fair coin picks one of them (timm's switch
  probability 0.5).
The layers are driven through `get_random_transformation(..., seed=SeedStream)` and
`transform_images` / `transform_labels`, so the result is deterministic given the seed.
"""

import functools

import keras
import tensorflow as tf

from supcon.data import _seeds


@functools.lru_cache(maxsize=None)
def _layer(kind, alpha):
    """A shared MixUp/CutMix layer; built outside any traced function (its unused
    SeedGenerator creates a variable, which a `tf.data` map function may not)."""
    with tf.init_scope():
        if kind == "mixup":
            return keras.layers.MixUp(alpha=alpha)
        return keras.layers.CutMix(factor=(alpha, alpha))


def mix_views(views, labels, num_classes, seed, *, mixup=0.0, cutmix=0.0):
    """Mixes every view of a batch with MixUp and/or CutMix.

    Args:
        views: float32 `[B, V, H, W, 3]`, values 0..255.
        labels: int `[B]` class ids.
        num_classes: int, C.
        seed: int `[2]` stateless seed of this batch.
        mixup: MixUp's Beta alpha; 0 turns MixUp off.
        cutmix: CutMix's Beta alpha in `(0, 1]`; 0 turns CutMix off.

    Returns:
        `(views, distributions)`: float32 `[B, V, H, W, 3]` and float32 `[B, V, C]`
        (each row sums to 1). With both off the views are returned unchanged and the
        distributions are one-hot.

    Example:
        >>> views, dists = mix_views(tf.zeros([4, 2, 8, 8, 3]), tf.constant([0, 1, 2, 0]),
        ...                          3, tf.constant([0, 1]), mixup=1.0)
    """
    if mixup < 0:
        raise ValueError(f"`mixup` must be >= 0. Received: mixup={mixup}")
    if not 0 <= cutmix <= 1:
        raise ValueError(f"`cutmix` must be in [0, 1] (Keras CutMix's alpha range). "
                         f"Received: cutmix={cutmix}")
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    layers = []
    if mixup > 0:
        layers.append(_layer("mixup", float(mixup)))
    if cutmix > 0:
        layers.append(_layer("cutmix", float(cutmix)))
    num_views = views.shape[1]
    out_views, out_labels = [], []
    for view in range(num_views):
        images = views[:, view]
        candidates = []
        for k, layer in enumerate(layers):
            stream = _seeds.SeedStream(_seeds.fold_in(seed, view, k))
            transformation = layer.get_random_transformation(images, training=True, seed=stream)
            candidates.append((layer.transform_images(images, transformation, training=True),
                               layer.transform_labels(one_hot, transformation, training=True)))
        if not candidates:
            candidates.append((images, one_hot))
        mixed_images, mixed_labels = candidates[0]
        if len(candidates) == 2:
            coin = tf.random.stateless_uniform([], seed=_seeds.fold_in(seed, view, 99)) < 0.5
            mixed_images = tf.where(coin, candidates[1][0], mixed_images)
            mixed_labels = tf.where(coin, candidates[1][1], mixed_labels)
        out_views.append(tf.cast(mixed_images, tf.float32))
        out_labels.append(tf.cast(mixed_labels, tf.float32))
    return tf.stack(out_views, axis=1), tf.stack(out_labels, axis=1)
