"""The stage after the crop (flip, colour jitter, grayscale, blur) on a batch of crops.

SimAugment's and `crop_flip`'s work after the random resized crop is per pixel, so it can
run on a whole batch `[N, H, W, 3]` at once, each image with its own random parameters
(`draw_params`), with the stages of `supcon.data.augment` (`apply_params`). That is what
`--augment_on=device` does: `DeviceAugmentation` draws the parameters of a replica's batch
from one seed of `(seed, optimizer step, replica)` and applies the stage inside the
training step, on the accelerator; decoding, cropping and resizing stay on the host.

On the host (`--augment_on=host`) the pipeline runs the same stages per image inside its
`tf.data` map instead (the per-image policy): batched after `Dataset.batch` they measured
half the host's throughput at 224 px (the batch is one unit of work for the map's
threads, and the gathers, scatters and image-per-channel blur cost more than the
per-image `tf.cond`s that skip the stages a view does not draw).

Both draw with the same function per stage (`augment._draw_stage`), so both draw from
the same distributions (a test compares them); only the seeds differ.
"""

import tensorflow as tf

from supcon.choices import DEVICE_AUGMENTATIONS
from supcon.data import _seeds
from supcon.data import augment as _augment

# Folded into the run's seed for the device stage's seeds (the host's views use the element
# index; MixUp uses -1 and the pass shuffles -2).
_DEVICE_SEED_TAG = -3


def draw_params(seed, shape, *, policy, color_jitter_strength):
    """Draws the stage's random parameters of `shape` images from one stateless seed.

    Each stage folds its own tag into `seed` (`augment._STAGE_TAGS`) and draws as the
    per-image policy does: for `shape=()` and a view's seed these are the per-image
    policy's draws for that view.

    Args:
        seed: int `[2]` stateless seed.
        shape: `()` (one image) or `(n,)`.
        policy: `"simaugment"` or `"crop_flip"`.
        color_jitter_strength: Python float s (see `get_augmentation`).

    Returns:
        dict of tensors with leading shape `shape`: `flip` bool; for simaugment also
        `jitter` bool (p 0.8), `factors` float32 `[..., 4]`, `order` int32 `[..., 4]`,
        `grayscale` bool (p 0.2), `blur` bool (p 0.5), `sigma` float32 in 0.1..2.0.
    """
    params = {}
    for name in _augment._PIXEL_STAGES[policy]:  # pylint: disable=protected-access
        params.update(_augment._draw_stage(  # pylint: disable=protected-access
            name, _seeds.fold_in(seed, _augment._STAGE_TAGS[name]),  # pylint: disable=protected-access
            shape, float(color_jitter_strength)))
    return params


def apply_params(images, params, *, policy, blur_kernel_size=None, static_shapes=False):
    """Flips, jitters, grays and blurs a batch, each image per its parameters (in that order).

    Args:
        images: float32 `[N, H, W, 3]`, values 0..255.
        params: dict from `draw_params` with leading shape `[N]`.
        policy: `"simaugment"` or `"crop_flip"`, as for `draw_params`.
        blur_kernel_size: odd int, or None for no blur stage (`blur="off"`, small images).
        static_shapes: True to run each op on the whole batch and select (shapes XLA can
            compile; more work); False (default) to run the jitter, its hue and the blur
            on the images that draw them only.

    Returns:
        float32 `[N, H, W, 3]`, values 0..255.
    """
    for name in _augment._PIXEL_STAGES[policy]:  # pylint: disable=protected-access
        if name == "blur" and blur_kernel_size is None:
            continue
        images = _augment._apply_stage(  # pylint: disable=protected-access
            name, images, params, kernel_size=blur_kernel_size, static_shapes=static_shapes)
    return tf.clip_by_value(images, 0.0, 255.0)


def check_policy(policy):
    """Raises unless `policy` has a stage after the crop that runs batched.

    Args:
        policy: an augmentation name.
    """
    if policy not in DEVICE_AUGMENTATIONS:
        raise ValueError(f"The stage after the crop runs batched (on the host or the device) for "
                         f"{DEVICE_AUGMENTATIONS} only. Received: augmentation={policy!r}")


class DeviceAugmentation:
    """The stage after the crop, run inside the training step (`--augment_on=device`).

    Called by `MultiViewModel.train_step` on each replica's views before the forward
    pass; never by `call`, `evaluate`, `predict` or an export, and not saved with the
    model (it is a setting of the run, like the optimizer's schedule). The parameters of
    a step come from `(seed, step, replica)`, so a run is reproducible, and a resumed run
    augments as the uninterrupted one did.

    Args:
        policy: `"simaugment"` or `"crop_flip"`.
        image_size: int, the side of the views (the blur kernel is ~10% of it).
        seed: int, the run's seed.
        color_jitter_strength: colour strength s (default 0.5).
        blur: `"auto"` (default), `"on"` or `"off"` (see `get_augmentation`).
        static_shapes: True under XLA (`jit_compile`): every op runs on the whole batch.

    Example:
        >>> augment = DeviceAugmentation("simaugment", 32, seed=0)
        >>> augment(tf.zeros([4, 2, 32, 32, 3]), step=0, replica=0).shape
        TensorShape([4, 2, 32, 32, 3])
    """

    def __init__(self, policy, image_size, *, seed,
                 color_jitter_strength=_augment.DEFAULT_COLOR_JITTER_STRENGTH, blur="auto",
                 static_shapes=False):
        check_policy(policy)
        # The same checks (and so the same errors) as the host's policy.
        _augment.get_augmentation(policy, image_size, blur=blur,
                                  color_jitter_strength=color_jitter_strength)
        self.policy = policy
        self.image_size = image_size
        self.seed = seed
        self.color_jitter_strength = float(color_jitter_strength)
        self.blur = blur
        self.static_shapes = bool(static_shapes)
        self._kernel_size = _augment._blur_kernel_size(  # pylint: disable=protected-access
            blur, image_size)

    def __call__(self, views, step, replica):
        """Augments a replica's views.

        Args:
            views: float `[B, V, H, W, 3]` or `[B, H, W, 3]`, values 0..255 (the crops).
            step: int scalar, the optimizer step (`optimizer.iterations`).
            replica: int scalar, the replica's id in its sync group.

        Returns:
            float32, the shape of `views`.
        """
        views = tf.cast(views, tf.float32)
        images = tf.reshape(views, tf.concat([[-1], tf.shape(views)[-3:]], axis=0))
        count = images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]
        seed = _seeds.fold_in(_seeds.root_seed(self.seed), _DEVICE_SEED_TAG, step, replica)
        params = draw_params(seed, (count,), policy=self.policy,
                             color_jitter_strength=self.color_jitter_strength)
        images = apply_params(images, params, policy=self.policy,
                              blur_kernel_size=self._kernel_size,
                              static_shapes=self.static_shapes)
        return tf.reshape(images, tf.shape(views))
