"""Generalized supervised contrastive loss (GenSCL) over label distributions.

Implements Kim et al., "Generalized Supervised Contrastive Learning",
arXiv 2206.00384 (Eq. 4-5): the target distribution of anchor `i` over the
other views `j` of the batch is their label similarity,

    y_ij = sim(l_i, l_j) / sum_{k != i} sim(l_i, l_k),   sim = cosine of label vectors,

and the loss is the cross-entropy between that target and the softmax of the
latent similarities,

    L_i = - sum_{j != i}  y_ij * log( exp(z_i.z_j / tau) / sum_{a != i} exp(z_i.z_a / tau) ).

With extra contrast keys (a memory queue, `contrast_features` with their
`contrast_label_distributions`), `j`, `k` and `a` also run over the valid keys;
keys are never anchors.

Label vectors are soft labels (MixUp / CutMix applied per view) or a teacher's
probabilities. Knowledge distillation adds a second term, as the official code
does (kiimmm/GenSCL `genscl.py`: `criterion(features, labels) + KD_alpha *
criterion(features, teacher)`); `GenSCLLoss(kd_alpha=...)` computes it for
targets `{"labels": ..., "teacher": ...}`. With one-hot labels `y_ij = 1/|P(i)|`
on the positives and GenSCL is SupCon's L_out (Khosla et al. Eq. 2); it shares
SupCon's engine, so the two agree to float32 rounding (the label vectors' cosines
come from a vectorized rsqrt, 1 - 2 ulps on some rows; tested to rtol 1e-5).
"""

import keras
import tensorflow as tf

from supcon.losses import _checks
from supcon.losses import _engine
from supcon.losses import options as options_lib
from supcon.losses import supcon as supcon_lib
from supcon.losses.options import ContrastOptions

# The settings GenSCL has: its equation is L_out with the "all" denominator and no cap.
GENSCL_SETTINGS = ("temperature", "base_temperature", "contrast_mode", "block_size")


def _genscl_options(options, settings, owner):
    """The resolved `ContrastOptions`, refusing settings GenSCL's equation does not have."""
    options = options_lib.resolve(options, settings, owner)
    defaults = ContrastOptions()
    for name in ContrastOptions.field_names():
        if name not in GENSCL_SETTINGS and getattr(options, name) != getattr(defaults, name):
            raise ValueError(
                f"GenSCL (Kim et al. 2022) is L_out with the 'all' denominator and no positives cap: "
                f"`{name}` must keep its default {getattr(defaults, name)!r} in `{owner}`. "
                f"Received: {name}={getattr(options, name)!r}"
            )
    return options


def _distributions_per_view(label_distributions, features):
    """Returns L2-normalized float32 `[batch, views, classes]` label vectors."""
    distributions = _checks.to_tensor(
        "label_distributions",
        label_distributions,
        "float label distributions [batch, classes] or [batch, views, classes]",
    )
    if not distributions.dtype.is_floating:
        # Integer [batch, classes] could be one-hot rows or several class ids per
        # sample; reading them as distributions would silently guess.
        raise ValueError(
            "`label_distributions` must be float label distributions [batch, classes] or "
            "[batch, views, classes]; for int class ids [batch] use `supcon_loss` (or pass "
            "`tf.one_hot(ids, num_classes)`). "
            f"Received: label_distributions.dtype={distributions.dtype.name}, "
            f"label_distributions.shape={distributions.shape}"
        )
    distributions = tf.cast(distributions, tf.float32)
    rank = distributions.shape.rank
    if rank not in (2, 3):
        raise ValueError(
            "`label_distributions` must be [batch, classes] or "
            "[batch, views, classes]. "
            f"Received: label_distributions.shape={distributions.shape}"
        )
    if rank == 3:
        views, received = features.shape[1], distributions.shape[1]
        if views is not None and received is not None and views != received:
            raise ValueError(
                "`label_distributions` of rank 3 must have one distribution per view "
                f"([batch, {views}, classes]). Received: "
                f"label_distributions.shape={distributions.shape}"
            )
    distributions = _checks.check_same_batch("label_distributions", distributions, features)
    distributions = _check_rows("label_distributions", distributions)
    if rank == 2:
        distributions = tf.repeat(distributions[:, None], tf.shape(features)[1], axis=1)
    # Cosine similarity = dot product of unit vectors.
    return tf.math.l2_normalize(distributions, axis=-1)


def _check_rows(name, distributions, valid=None):
    """`distributions`, checked to hold finite, non-negative rows with a positive sum.

    Only the direction of a row matters (cosine), so rows need not sum to 1;
    but a negative entry would bend the similarities and an all-zero row (e.g.
    `tf.one_hot` of an out-of-range id) would silently drop the sample.
    `valid` (bool `[rows]`) exempts absent key slots, which may hold anything.
    """
    valid_rows = tf.logical_and(
        tf.reduce_all(tf.logical_and(distributions >= 0, tf.math.is_finite(distributions)), axis=-1),
        tf.reduce_sum(distributions, axis=-1) > 0,
    )
    if valid is not None:
        valid_rows = tf.logical_or(valid_rows, tf.logical_not(valid))
    checks = _checks.check_values(
        name, valid_rows, "hold finite, non-negative rows with a positive sum", distributions
    )
    return _checks.with_checks(distributions, checks)


def _key_distributions(contrast_label_distributions, keys, valid, batch_vectors):
    """L2-normalized float32 `[keys, classes]` label vectors of the keys (zero on absent slots)."""
    name = "contrast_label_distributions"
    if contrast_label_distributions is None:
        raise ValueError(
            f"`{name}` (float [keys, classes]) are required with `contrast_features`: a key's "
            f"label vector sets its target weight. Received: {name}=None, "
            f"contrast_features.shape={keys.shape}"
        )
    distributions = _checks.to_tensor(name, contrast_label_distributions, "float label distributions [keys, classes]")
    if not distributions.dtype.is_floating or distributions.shape.rank != 2:
        raise ValueError(
            f"`{name}` must be float label distributions [keys, classes] (one per key). "
            f"Received: {name}.dtype={distributions.dtype.name}, {name}.shape={distributions.shape}"
        )
    classes, received = batch_vectors.shape[-1], distributions.shape[1]
    if classes is not None and received is not None and classes != received:
        raise ValueError(
            f"`{name}` must have as many classes as `label_distributions` ({classes}). "
            f"Received: {name}.shape={distributions.shape}"
        )
    distributions = _checks.check_same_keys(name, tf.cast(distributions, tf.float32), keys)
    distributions = _check_rows(name, distributions, valid)
    distributions = tf.where(valid[:, None], distributions, 0.0)
    return tf.math.l2_normalize(distributions, axis=-1)


def genscl_per_sample(
    features,
    label_distributions,
    *,
    options=None,
    contrast_features=None,
    contrast_label_distributions=None,
    contrast_valid=None,
    **settings,
):
    """`genscl_loss` plus a bool `[batch]` saying which samples had a target."""
    options = _genscl_options(options, settings, "genscl_loss")
    _checks.check_contrast_arguments(
        contrast_features, contrast_valid, contrast_label_distributions=contrast_label_distributions
    )
    features = _checks.features_to_float32(features)
    unit_labels = _distributions_per_view(label_distributions, features)
    keys = key_valid = key_vectors = None
    if contrast_features is not None:
        keys = _checks.contrast_features_to_float32(contrast_features, features)
        key_valid = _checks.contrast_valid_to_bool(contrast_valid, keys)
        key_vectors = _key_distributions(contrast_label_distributions, keys, key_valid, unit_labels)
    # Pair weights max(cos, 0) = cos: the label vectors are non-negative (checked above).
    return _engine.contrastive_per_sample(
        features, options, label_vectors=unit_labels, keys=keys, key_valid=key_valid, key_vectors=key_vectors
    )


def genscl_loss(
    features,
    label_distributions,
    *,
    options=None,
    contrast_features=None,
    contrast_label_distributions=None,
    contrast_valid=None,
    **settings,
):
    """GenSCL loss per sample (Kim et al. 2022, arXiv 2206.00384).

    Args:
      features: float `[batch, views, dim]` L2-normalized projections (not
        normalized here), any float dtype; computed in float32.
      label_distributions: float, non-negative `[batch, classes]` (shared by
        the views) or `[batch, views, classes]` (one per view, e.g. MixUp/CutMix
        applied to each view). Only their direction matters (cosine), so rows
        need not sum to 1, but every row needs a positive entry.
      options: None (the defaults) or a `ContrastOptions` with GenSCL's
        settings: temperature (tau, default 0.1), base_temperature (optional
        `temperature / base_temperature` scaling, as in `supcon_loss`),
        contrast_mode ("all" or "one") and block_size (the memory-saving
        path); the other fields must keep their defaults (GenSCL is L_out
        with the "all" denominator).
      **settings: the same settings as keywords; they override `options`'s.
      contrast_features: None or float `[keys, dim]` L2-normalized extra
        contrast keys (a memory queue), as in `supcon_loss`: they join every
        anchor's `j` (target and softmax) but are never anchors, and are not
        gathered across replicas.
      contrast_label_distributions: float `[keys, classes]`, the keys' label
        vectors (same rules as `label_distributions`); required with
        `contrast_features`.
      contrast_valid: None (all keys) or bool `[keys]`: false slots are left
        out of target and softmax, as if absent (their contents are ignored).

    Returns:
      float32 `[batch]`, averaged over each sample's anchor views; 0 for a
      sample whose label vector is orthogonal to every other one (keys
      included).

    Example:

    >>> z = tf.math.l2_normalize(tf.random.stateless_normal([3, 2, 8], seed=[1, 2]), -1)
    >>> genscl_loss(z, [[1.0, 0.0], [0.7, 0.3], [0.0, 1.0]]).shape
    TensorShape([3])
    """
    per_sample, _ = genscl_per_sample(
        features,
        label_distributions,
        options=options,
        contrast_features=contrast_features,
        contrast_label_distributions=contrast_label_distributions,
        contrast_valid=contrast_valid,
        **settings,
    )
    return per_sample


# kiimmm/GenSCL `parser.py`: `--KD-alpha` defaults to 1.
OFFICIAL_KD_ALPHA = 1.0
DISTILLATION_KEYS = ("labels", "teacher")


def split_distillation_targets(y_true):
    """`(labels, teacher)` from targets `{"labels": ..., "teacher": ...}`; `(y_true, None)` otherwise."""
    if not isinstance(y_true, dict):
        return y_true, None
    if set(y_true) != set(DISTILLATION_KEYS):
        raise ValueError(
            "Distillation targets must be a dict with exactly the keys 'labels' (label "
            "distributions) and 'teacher' (the teacher's distributions). "
            f"Received: keys={sorted(y_true)}"
        )
    return y_true["labels"], y_true["teacher"]


@keras.saving.register_keras_serializable(package="supcon")
class GenSCLLoss(supcon_lib._ContrastiveLoss):  # pylint: disable=protected-access
    """Keras form of `genscl_loss`: `y_true` = label distributions, `y_pred` = features.

    With the default reduction the value is the mean over samples that have a
    target (see `SupConLoss`); negatives are gathered across replicas.

    Knowledge distillation (Kim et al. §3.3, as kiimmm/GenSCL trains it): with
    `y_true = {"labels": l, "teacher": t}` (both `[batch, classes]` or
    `[batch, views, classes]`, e.g. from `supcon.training.teacher`) the value is
    `GenSCLLoss()(l, z) + kd_alpha * GenSCLLoss()(t, z)`, each term reduced on
    its own (per sample with `reduction=None`).

    `with_contrast(y_true, y_pred, contrast_features, contrast_labels,
    contrast_valid=None)` joins extra contrast keys; `contrast_labels` are the
    keys' label distributions `[keys, classes]`, or with distillation targets
    a dict `{"labels": ..., "teacher": ...}` of them (each term contrasts
    against the same keys with its own key targets).

    Args: as `genscl_loss` (the `contrast_*` keys go to `with_contrast`),
    plus `kd_alpha` (float >= 0, default 1.0, the official `--KD-alpha`:
    weight of the teacher term), `name`, `reduction`, `dtype`.

    Example:

    >>> z = tf.math.l2_normalize(tf.random.stateless_normal([3, 2, 8], seed=[1, 2]), -1)
    >>> labels = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    >>> teacher = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]
    >>> value = GenSCLLoss(kd_alpha=0.5)({"labels": labels, "teacher": teacher}, z)
    >>> expected = GenSCLLoss()(labels, z) + 0.5 * GenSCLLoss()(teacher, z)
    >>> bool(abs(value - expected) < 1e-5)
    True
    """

    def __init__(
        self,
        options=None,
        *,
        kd_alpha=OFFICIAL_KD_ALPHA,
        name="genscl_loss",
        reduction="sum_over_batch_size",
        dtype=None,
        **settings,
    ):
        options = _genscl_options(options, settings, "GenSCLLoss")
        if isinstance(kd_alpha, bool) or not isinstance(kd_alpha, (int, float)) or not 0 <= kd_alpha < float("inf"):
            raise ValueError(f"`kd_alpha` must be a finite number >= 0. Received: kd_alpha={kd_alpha!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._set_options(options)
        self.kd_alpha = float(kd_alpha)

    def _per_sample_and_valid(self, y_true, y_pred, contrast):
        keys = {}
        if contrast is not None:
            keys = dict(
                contrast_features=contrast.features,
                contrast_label_distributions=contrast.labels,
                contrast_valid=contrast.valid,
            )
        return genscl_per_sample(y_pred, y_true, options=self.options, **keys)

    def call(self, y_true, y_pred):
        labels, teacher = split_distillation_targets(y_true)
        label_keys = teacher_keys = self._contrast
        if self._contrast is not None:
            key_labels, key_teacher = split_distillation_targets(self._contrast.labels)
            if (key_teacher is None) != (teacher is None):
                raise ValueError(
                    "The keys' targets must take the form of `y_true`: a dict "
                    "{'labels': ..., 'teacher': ...} of [keys, classes] distributions with "
                    "distillation targets, one [keys, classes] array without. "
                    f"Received: y_true of type {type(y_true).__name__}, "
                    f"contrast_labels of type {type(self._contrast.labels).__name__}"
                )
            label_keys = self._contrast._replace(labels=key_labels)
            teacher_keys = self._contrast._replace(labels=key_teacher)
        per_sample = self._reduced_per_sample(labels, y_pred, label_keys)
        if teacher is not None:
            # Two losses, each a mean over its own valid samples: GenSCL is not
            # linear in the label vectors, so one loss on a mixed target differs.
            per_sample = per_sample + self.kd_alpha * self._reduced_per_sample(teacher, y_pred, teacher_keys)
        return per_sample

    def get_config(self):
        config = super().get_config()
        config.update({"kd_alpha": self.kd_alpha})
        return config

    _option_names = GENSCL_SETTINGS
