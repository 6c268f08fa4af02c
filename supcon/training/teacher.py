"""Knowledge distillation targets for GenSCL (Kim et al. 2022, arXiv 2206.00384, §3.3).

As the official code does it (kiimmm/GenSCL `genscl.py`, `train`): the teacher sees the same
(MixUp/CutMix-mixed) views as the student, its targets are `softmax(logits / T)`, and the loss is
two GenSCL terms, `L(label distributions) + kd_alpha · L(teacher distributions)` — not one loss on
a mixture of the two (GenSCL is not linear in its label vectors). This module builds the targets;
`supcon.losses.GenSCLLoss(kd_alpha=...)` adds the two terms.

The teacher is a SavedModel written by `supcon.models.export_saved_model` (`saved_model/` of an
earlier run), whose `serving_default` signature maps float32 images `[N, H, W, 3]` in [0, 255] to
a dict with `logits` and `probabilities` `[N, C]`.
"""

import tensorflow as tf

# kiimmm/GenSCL parser defaults: `--KD-temp 1`, `--KD-alpha 1`.
OFFICIAL_KD_TEMPERATURE = 1.0


def load_teacher(path):
    """Loads a teacher's `serving_default` signature.

    Args:
        path: str, a SavedModel directory with a `logits` (or at least `probabilities`) output.

    Returns:
        A function `teacher(images=[N, H, W, 3]) -> {"logits": [N, C], "probabilities": [N, C], ...}`.
    """
    if not tf.saved_model.contains_saved_model(path):
        raise ValueError(f"`teacher` must be a SavedModel directory. Received: teacher={path!r}")
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["serving_default"].structured_outputs
    if not {"logits", "probabilities"} & set(outputs):
        raise ValueError(
            "The teacher SavedModel has no `logits` or `probabilities` output (export it with a "
            f"classifier). Received: teacher={path!r} with outputs {sorted(outputs)}"
        )

    def teacher(images):
        # Goes through `loaded`, which so stays alive: a signature alone does not keep the
        # SavedModel's variables, and calling it after they are collected fails.
        return loaded.signatures["serving_default"](images=images)

    return teacher


def teacher_distributions(outputs, temperature=OFFICIAL_KD_TEMPERATURE):
    """The teacher's target distributions `softmax(logits / temperature)`.

    Args:
        outputs: the teacher's output dict: `logits` `[N, C]`, or only `probabilities` `[N, C]`
            (usable only at `temperature == 1`, where they are `softmax(logits)`).
        temperature: float > 0, the distillation temperature T. Default 1.

    Returns:
        float32 `[N, C]`.
    """
    if "logits" in outputs:
        return tf.nn.softmax(tf.cast(outputs["logits"], tf.float32) / temperature, axis=-1)
    if "probabilities" in outputs and temperature == 1.0:
        return tf.cast(outputs["probabilities"], tf.float32)
    raise ValueError(
        "The teacher must output `logits` to be softened by a temperature other than 1 (or "
        f"`probabilities` at temperature 1). Received: outputs {sorted(outputs)}, "
        f"kd_temperature={temperature}"
    )


def with_teacher_targets(dataset, teacher, *, num_classes, temperature=OFFICIAL_KD_TEMPERATURE):
    """Adds the teacher's distributions of each view to the targets.

    Args:
        dataset: training pipeline of `(views [B, V, H, W, 3], labels)`, labels int `[B]` or
            float distributions `[B, C]` / `[B, V, C]` (MixUp/CutMix).
        teacher: the result of `load_teacher` (any callable `images=` -> output dict).
        num_classes: int C.
        temperature: float > 0, the distillation temperature T (kiimmm/GenSCL `--KD-temp`).

    Returns:
        A dataset of `(views, {"labels": [B, V, C], "teacher": [B, V, C]})`, float32: the label
        distributions and `softmax(teacher_logits(view) / T)`, for `GenSCLLoss(kd_alpha=...)`.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise ValueError(f"`temperature` must be a positive finite number. Received: temperature={temperature!r}")
    temperature = float(temperature)

    def add_teacher(views, labels):
        shape = tf.shape(views)
        batch, num_views = shape[0], shape[1]
        images = tf.reshape(views, tf.concat([[batch * num_views], shape[2:]], axis=0))
        targets = teacher_distributions(teacher(images=images), temperature)
        targets = tf.reshape(targets, [batch, num_views, num_classes])
        if labels.dtype.is_integer:
            labels = tf.one_hot(labels, num_classes)
        labels = tf.cast(labels, tf.float32)
        if labels.shape.rank == 2:
            labels = tf.repeat(labels[:, None], num_views, axis=1)
        return views, {"labels": labels, "teacher": targets}

    return dataset.map(add_teacher, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
