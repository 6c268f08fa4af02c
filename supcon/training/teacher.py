"""Knowledge distillation targets for GenSCL (Kim et al. 2022, arXiv 2206.00384, §3.3).

GenSCL's target for each view is a label distribution; with a teacher it becomes a convex mix of
the (possibly MixUp/CutMix) label distribution and the teacher's predicted class probabilities:
`y = (1 − w)·y_label + w·p_teacher(x)`. The teacher is a SavedModel written by
`supcon.models.export_saved_model` (`saved_model/` of an earlier run), whose `serving_default`
signature maps float32 images `[N, H, W, 3]` in [0, 255] to a dict with `probabilities` `[N, C]`.
"""

import tensorflow as tf


def load_teacher(path):
    """Loads a teacher's `serving_default` signature.

    Args:
        path: str, a SavedModel directory with a `probabilities` output.

    Returns:
        A concrete function `images -> {"probabilities": [N, C], ...}`.
    """
    if not tf.saved_model.contains_saved_model(path):
        raise ValueError(f"`teacher` must be a SavedModel directory. Received: teacher={path!r}")
    signature = tf.saved_model.load(path).signatures["serving_default"]
    if "probabilities" not in signature.structured_outputs:
        raise ValueError(
            "The teacher SavedModel has no `probabilities` output (export it with a classifier). "
            f"Received: teacher={path!r} with outputs {sorted(signature.structured_outputs)}"
        )
    return signature


def with_teacher_targets(dataset, teacher, *, num_classes, weight):
    """Replaces each batch's labels by `(1 − weight)·labels + weight·teacher(views)`.

    Args:
        dataset: training pipeline of `(views [B, V, H, W, 3], labels)`, labels int `[B]` or
            float distributions `[B, C]` / `[B, V, C]`.
        teacher: the result of `load_teacher`.
        num_classes: int C.
        weight: float in [0, 1].

    Returns:
        A dataset of `(views, distributions [B, V, C] float32)`.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"`weight` must be in [0, 1]. Received: weight={weight}")

    def mix(views, labels):
        shape = tf.shape(views)
        batch, num_views = shape[0], shape[1]
        images = tf.reshape(views, tf.concat([[batch * num_views], shape[2:]], axis=0))
        probabilities = teacher(images=images)["probabilities"]
        probabilities = tf.reshape(tf.cast(probabilities, tf.float32), [batch, num_views, -1])
        if labels.dtype.is_integer:
            labels = tf.one_hot(labels, num_classes)
        labels = tf.cast(labels, tf.float32)
        if labels.shape.rank == 2:
            labels = tf.repeat(labels[:, None], num_views, axis=1)
        return views, (1.0 - weight) * labels + weight * probabilities

    return dataset.map(mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
