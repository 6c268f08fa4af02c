"""`SupConModel`: encoder + projection head (+ classifier) trained with `model.fit`.

Khosla et al. 2020 (arXiv 2004.11362) §3: "Enc(.)" gives `r`, "Proj(.)" gives the
normalized `z` fed to the supervised contrastive loss (Eq. 2, `L^sup_out`). The loss
comes from `compile`, so one model trains SupCon (`supcon.losses.SupConLoss`), SimCLR
(`SimCLRLoss`, labels ignored) or GenSCL (`GenSCLLoss`, label distributions).
"""

import math

import keras
import tensorflow as tf
from keras import ops

from supcon import losses as supcon_losses
from supcon.losses import _ids as loss_ids
from supcon.losses.genscl import split_distillation_targets
from supcon.models import _multiview
from supcon.models.heads import ClassifierHead
from supcon.models.heads import ProjectionHead
from supcon.models.heads import check_num_classes
from supcon.models.momentum_queue import MOCO_MOMENTUM
from supcon.models.momentum_queue import NO_LABEL
from supcon.models.momentum_queue import MomentumQueue
from supcon.models.momentum_queue import check_queue_arguments


@keras.saving.register_keras_serializable(package="supcon")
class SupConModel(_multiview.MultiViewModel):
    """Contrastive model: `encoder` -> `projection_head`, plus an optional classifier.

    Training data is `(views, labels)`: views float32 `[B, V, H, W, 3]` in [0, 255] (or a
    tuple of V batches `[B, H, W, 3]`, or `[B, H, W, 3]` for V=1); labels int class ids
    `[B]` (SupCon), anything or nothing (SimCLR; without labels every sample is its own
    class, which makes SupCon equal SimCLR), or float label distributions `[B, C]` /
    `[B, V, C]` (GenSCL, MixUp/CutMix), or for GenSCL knowledge distillation a dict
    `{"labels": [B, V, C], "teacher": [B, V, C]}` (`supcon.training.teacher`): the loss is
    then `L(labels) + kd_alpha * L(teacher)` with the compiled `GenSCLLoss(kd_alpha=...)`,
    and the classifier and metrics use the labels. The views are folded into the batch so the encoder
    runs once on `[B * V, H, W, 3]`; the projections are unfolded to `[B, V, D]` for the
    loss (Eq. 2 sums over all `2N` views of the multiviewed batch).

    Optional classifier (`num_classes`): a `ClassifierHead` trained at the same time.
      * `ce_weight=0` (default): the paper's reference one-stage setup. The head sees
        `stop_gradient(embedding)`; its cross-entropy is added to the loss but only
        trains the head, never the encoder.
      * `ce_weight>0`: no stop-gradient; `ce_weight * cross_entropy` is added to the
        contrastive loss and trains the encoder too (a hybrid objective, not the paper's).
    With label distributions the classifier is trained with the soft cross-entropy
    against the distribution of each view (exact for MixUp/CutMix targets), and
    `accuracy` compares the argmax of the logits with the argmax of the distribution.

    Optional memory queue (`queue_size=K > 0`; MoCo, He et al. 2020, arXiv 1911.05722),
    for small batches: `model.momentum_queue` (`supcon.models.momentum_queue`) holds a
    key encoder and head, copies of `encoder` and `projection_head` that no gradient
    trains, and the last K keys with their labels. Each training step
      1. contrasts the batch's views with each other and with the valid keys of the
         queue (`loss.with_contrast`: keys join the contrast set, never as anchors; a
         same-class key is a positive); the queue holds earlier batches' keys only;
      2. applies the optimizer step;
      3. moves every key weight (batch-norm moving statistics included) to
         `m * key + (1 - m) * query` (Eq. 2, `m = key_encoder_momentum`);
      4. computes the batch's keys (every view) with the key encoder and head in
         inference mode, gathers them over replicas, and enqueues them with their
         labels over the oldest slots.
    So a key enters the contrast set from the next step on, never twice in one step.
    `evaluate` reports the in-batch loss (no queue). `model.encoder` stays the query
    encoder. The queue and key weights are variables of the model: checkpoints and
    `model.keras` keep them (`load_model` restores the queue as saved). SupCon keys keep
    class ids (SimCLR's, or SupCon's without labels, `NO_LABEL`: a negative of every
    anchor); GenSCL keys keep label distributions (`queue_label_dim=C`), and teacher
    distributions for distillation targets. `sample_weight` is not supported with a queue.

    Metrics reported by `fit`/`evaluate`:
      * `loss`: the total loss (contrastive + classifier cross-entropy + regularizers).
      * `accuracy`: classifier accuracy (only with `num_classes`).
      * `positive_similarity` / `negative_similarity`: mean cosine similarity of the
        projections over positive / negative pairs of the (per-replica) batch, self-pairs
        excluded. Positives are pairs of the same class (argmax for distributions, all
        views), or of the same sample for `SimCLRLoss` or without labels. Collapse shows
        up first as `negative_similarity` rising towards `positive_similarity`.

    Outputs (`call`/`predict`): a dict with `embedding` `[N, F]`, `projection` `[N, D]`,
    and with a classifier `logits` and `probabilities` `[N, C]`, all float32; for views
    input every entry gets a view axis (`[B, V, ...]`). No entry is ever None.

    Args:
        encoder: a `keras.Model` mapping images `[N, H, W, 3]` to embeddings `[N, F]`
            (e.g. `supcon.models.resnet(...)`), available as `model.encoder`.
        projection_head: a layer mapping `[N, F]` to normalized `[N, D]`; default
            `ProjectionHead()` (2048 -> 128 MLP, the paper's).
        num_classes: optional int >= 2, adds a `ClassifierHead(num_classes)`. Default None.
        ce_weight: float >= 0, see above; requires `num_classes` when > 0. Default 0.
        classifier_normalize: bool, L2-normalize the embedding fed to the classifier.
            Default False.
        queue_size: int >= 0, keys kept in the memory queue (see above). Default 0: no
            queue and no key encoder, the plain in-batch loss.
        key_encoder_momentum: float in [0, 1), m of the key encoder's moving average.
            Default 0.999 (MoCo's).
        queue_label_dim: None (default): the queue keeps class ids (`SupConLoss`,
            `SimCLRLoss`). An int C: it keeps label distributions over C classes, as
            `GenSCLLoss` needs. Only with `queue_size > 0`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:
        >>> import supcon
        >>> encoder = supcon.models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(16, 16, 3))
        >>> model = SupConModel(encoder, ProjectionHead(dims=(32, 8)), num_classes=3)
        >>> model.compile(optimizer="sgd", loss=supcon.losses.SupConLoss(temperature=0.1))
        >>> views = keras.random.uniform((4, 2, 16, 16, 3), maxval=255.0, seed=0)
        >>> history = model.fit(views, keras.ops.array([0, 1, 2, 0]), epochs=1, verbose=0)
        >>> sorted(model.predict(views[:, 0], verbose=0))
        ['embedding', 'logits', 'probabilities', 'projection']

        With a queue of 16 keys (each step enqueues its 4 x 2 views):

        >>> queued = SupConModel(encoder, ProjectionHead(dims=(32, 8)), queue_size=16)
        >>> queued.compile(optimizer="sgd", loss=supcon.losses.SupConLoss(temperature=0.1))
        >>> history = queued.fit(views, keras.ops.array([0, 1, 2, 0]), epochs=1, verbose=0)
        >>> int(queued.momentum_queue.count.numpy())
        8
    """

    def __init__(
        self,
        encoder,
        projection_head=None,
        num_classes=None,
        *,
        ce_weight=0.0,
        classifier_normalize=False,
        queue_size=0,
        key_encoder_momentum=MOCO_MOMENTUM,
        queue_label_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise TypeError(f"`encoder` must be a keras.Model. Received: encoder={encoder!r}")
        if len(encoder.output_shape) != 2 or encoder.output_shape[-1] is None:
            raise ValueError(
                "`encoder` must map images to embeddings [N, F] with a known F. "
                f"Received: encoder.output_shape={encoder.output_shape}"
            )
        if projection_head is not None and not isinstance(projection_head, keras.layers.Layer):
            raise TypeError(
                "`projection_head` must be a Keras layer mapping embeddings [N, F] to projections "
                f"[N, D] (e.g. ProjectionHead(dims=(2048, 128))) or None. Received: projection_head={projection_head!r}"
            )
        if num_classes is not None:
            check_num_classes(num_classes)
        if isinstance(ce_weight, bool) or not isinstance(ce_weight, (int, float)) or not 0 <= ce_weight < math.inf:
            raise ValueError(f"`ce_weight` must be a finite number >= 0. Received: ce_weight={ce_weight!r}")
        if ce_weight > 0 and num_classes is None:
            raise ValueError(f"`ce_weight` > 0 needs a classifier: pass `num_classes`. Received: ce_weight={ce_weight!r}")
        check_queue_arguments(queue_size, key_encoder_momentum, queue_label_dim)
        self.encoder = encoder
        self.projection_head = projection_head if projection_head is not None else ProjectionHead()
        self.num_classes = num_classes
        self.ce_weight = float(ce_weight)
        self.classifier_normalize = bool(classifier_normalize)
        self.classifier_head = None
        if num_classes is not None:
            self.classifier_head = ClassifierHead(
                num_classes, normalize=classifier_normalize, stop_gradient=self.ce_weight == 0, name="classifier_head"
            )
        self._pos_metric = keras.metrics.Mean(name="positive_similarity")
        self._neg_metric = keras.metrics.Mean(name="negative_similarity")
        self._accuracy_metric = keras.metrics.CategoricalAccuracy(name="accuracy") if num_classes else None
        # Everything is built now (the encoder is functional), so `count_params`, saving
        # and loading work before the first call.
        embedding_shape = tuple(encoder.output_shape)
        if not self.projection_head.built:
            self.projection_head.build(embedding_shape)
        if self.classifier_head is not None:
            self.classifier_head.build(embedding_shape)
        self.queue_size = int(queue_size)
        self.key_encoder_momentum = float(key_encoder_momentum)
        self.queue_label_dim = None if queue_label_dim is None else int(queue_label_dim)
        self.momentum_queue = None
        if self.queue_size:
            # After the heads are built: the key copies start from the query's initial weights.
            self.momentum_queue = MomentumQueue(
                encoder,
                self.projection_head,
                self.queue_size,
                momentum=self.key_encoder_momentum,
                label_dim=self.queue_label_dim,
                name="momentum_queue",
            )
        self.built = True

    @property
    def _extra_metrics(self):
        extra = [self._accuracy_metric] if self._accuracy_metric is not None else []
        return extra + [self._pos_metric, self._neg_metric]

    def call(self, inputs, training=False):
        images, num_views = _multiview.fold_views(inputs)
        _multiview.check_images(images, self.encoder)
        embedding = self.encoder(images, training=training)
        outputs = {"embedding": embedding, "projection": self.projection_head(embedding, training=training)}
        if self.classifier_head is not None:
            logits = self.classifier_head(embedding)
            outputs["logits"] = logits
            outputs["probabilities"] = ops.softmax(logits, axis=-1)
        outputs["embedding"] = ops.cast(embedding, "float32")
        return {k: _multiview.unfold(v, num_views) for k, v in outputs.items()}

    def _features(self, y_pred):
        features = y_pred["projection"]
        if len(features.shape) == 2:  # A plain batch is one view per sample.
            features = ops.expand_dims(features, 1)
        return features

    def fit(self, x=None, *args, **kwargs):
        self._check_queue_loss()  # Before any work; `compile` is not overridden, so `load_model` recompiles.
        return super().fit(x, *args, **kwargs)

    def _check_queue_loss(self):
        """Raises unless a queue has a loss that takes its keys (`with_contrast`) in their label form."""
        if self.momentum_queue is None:
            return
        loss = getattr(self, "loss", None)
        if not isinstance(loss, (supcon_losses.SupConLoss, supcon_losses.GenSCLLoss)):
            raise ValueError(
                "A queue (`queue_size` > 0) joins its keys through the loss's `with_contrast`: compile "
                "with supcon.losses.SupConLoss, SimCLRLoss or GenSCLLoss. "
                f"Received: loss={loss!r}"
            )
        genscl = isinstance(loss, supcon_losses.GenSCLLoss)
        if genscl and self.queue_label_dim is None:
            raise ValueError(
                "GenSCLLoss compares label distributions, so the queue must keep them: pass "
                "`queue_label_dim` = the number of classes C of the targets. Received: queue_label_dim=None"
            )
        if not genscl and self.queue_label_dim is not None:
            raise ValueError(
                "`queue_label_dim` makes the queue keep label distributions, for GenSCLLoss; "
                f"{type(loss).__name__} keys keep class ids: leave it None. "
                f"Received: queue_label_dim={self.queue_label_dim}"
            )

    def _ignores_labels(self):
        return isinstance(getattr(self, "loss", None), supcon_losses.SimCLRLoss)

    def _check_targets(self, y):
        if y is None:
            self._check_has_labels(y)
            return []
        y, teacher = self._split_targets(y)
        if teacher is not None:
            _multiview.check_labels(teacher)
        if not self._ignores_labels():
            _multiview.check_labels(y)
        if self.classifier_head is not None:
            return _multiview.check_targets(y, self.num_classes)
        return []

    def _split_targets(self, y):
        """`(labels, teacher distributions or None)`; a teacher needs the compiled `GenSCLLoss`."""
        labels, teacher = split_distillation_targets(y)
        if teacher is not None and not isinstance(getattr(self, "loss", None), supcon_losses.GenSCLLoss):
            raise ValueError(
                "Targets with a 'teacher' (knowledge distillation) need the model compiled with "
                f"`GenSCLLoss`. Received: loss={getattr(self, 'loss', None)!r}"
            )
        return labels, teacher

    def _check_has_labels(self, y):
        if y is not None:
            return
        if isinstance(getattr(self, "loss", None), supcon_losses.GenSCLLoss):
            raise ValueError("GenSCLLoss needs label distributions: the data must be (views, labels). Received: y=None")
        if self.classifier_head is not None:
            raise ValueError("A SupConModel with `num_classes` needs labels to train its classifier. Received: y=None")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Contrastive loss of the projections (+ classifier cross-entropy, + regularizers).

        Args:
            x: the inputs (unused).
            y: labels: int `[B]`, float distributions `[B, C]`/`[B, V, C]`, None, or
                `{"labels": ..., "teacher": ...}` distributions (GenSCL distillation).
            y_pred: the dict returned by `call`.
            sample_weight: optional float `[B]`.
            training: bool.

        Returns:
            float32 scalar: this replica's share of the loss (Keras convention).
        """
        features = self._features(y_pred)
        self._check_has_labels(y)
        y, teacher = self._split_targets(y)
        if y is not None and not self._ignores_labels():
            # Before the Keras loss casts them to float (and int one-hot rows become
            # indistinguishable from float ones).
            _multiview.check_labels(y)
        labels = y
        if labels is None:
            # Every sample its own class: SupCon reduces to SimCLR (Khosla et al. §3.2.2).
            labels = _own_class_ids(ops.shape(features)[0])
        if self.momentum_queue is not None and training:
            total = self._contrastive_loss_with_queue(labels, teacher, features, sample_weight)
        else:
            total = super().compute_loss(x=x, y=labels, y_pred=features, sample_weight=sample_weight, training=training)
            total = ops.cast(total, "float32")
            if teacher is not None:
                # Keras' compiled loss takes one target per output, so the distillation term
                # (kiimmm/GenSCL: L(labels) + KD_alpha * L(teacher)) is the compiled loss again.
                teacher_loss = self.loss(teacher, features, sample_weight=sample_weight)
                total = total + self.loss.kd_alpha * ops.cast(teacher_loss, "float32")
        if self.classifier_head is not None:
            num_views = features.shape[1]
            targets = _multiview.per_view_targets(y, num_views, self.num_classes)
            logits = _multiview.flatten_views(y_pred["logits"], 1)
            cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True)(
                targets, logits, sample_weight=_multiview.repeat_sample_weight(sample_weight, num_views)
            )
            total = total + (self.ce_weight or 1.0) * cross_entropy
        return total

    def _contrastive_loss_with_queue(self, labels, teacher, features, sample_weight):
        """The compiled loss with the queue's keys joined (`with_contrast`), + regularizers."""
        self._check_queue_loss()
        if sample_weight is not None:
            raise ValueError(
                "`sample_weight` is not supported with a queue (`queue_size` > 0): the loss with extra "
                "keys takes no sample weights. Received: sample_weight given"
            )
        keys, key_labels, valid = self.momentum_queue.contents()
        if self._ignores_labels():
            key_labels = None  # SimCLR: every key is a negative.
        total = ops.cast(self.loss.with_contrast(labels, features, keys, key_labels, valid), "float32")
        if teacher is not None:
            # As without a queue: L(labels) + KD_alpha * L(teacher), each against the keys'
            # own targets; keys enqueued without a teacher are left out of the second term.
            key_teacher, teacher_valid = self.momentum_queue.teacher_contents()
            teacher_loss = self.loss.with_contrast(teacher, features, keys, key_teacher, teacher_valid)
            total = total + self.loss.kd_alpha * ops.cast(teacher_loss, "float32")
        # Regularizers and `add_loss` terms, summed as Keras' own `compute_loss` adds them.
        for extra in self.losses:
            total = total + ops.sum(ops.cast(extra, "float32"))
        return total

    def _after_optimizer_step(self, x, y):
        """Steps 3 and 4 of the queue (see the class doc): key encoder EMA, then enqueue the batch's keys."""
        queue = self.momentum_queue
        if queue is None:
            return
        queue.update_keys(self.encoder, self.projection_head)
        images, num_views = _multiview.fold_views(x)
        keys = queue(images)
        labels, teacher = self._split_targets(y)
        key_teacher = None
        if queue.label_dim is not None:
            key_labels = _multiview.per_view_distributions(labels, num_views)
            if teacher is not None:
                key_teacher = _multiview.per_view_distributions(teacher, num_views)
        elif labels is None or self._ignores_labels():
            key_labels = ops.full((ops.shape(images)[0],), NO_LABEL, dtype="int32")
        else:
            key_labels = _multiview.per_view_class_ids(labels, num_views)
        queue.enqueue(keys, key_labels, key_teacher)

    def _update_extra_metrics(self, y, y_pred, sample_weight):
        y, _ = self._split_targets(y)
        features = self._features(y_pred)
        num_views = features.shape[1]
        flat = ops.reshape(features, (-1, features.shape[-1]))
        if y is None or self._ignores_labels():
            ids = ops.repeat(ops.arange(ops.shape(flat)[0] // num_views), num_views, axis=0)
        else:
            ids = _multiview.per_view_class_ids(y, num_views)
        # Sums over the pairs from per-class sums, O(B V D): no second [B V, B V] similarity matrix.
        positive_sum, positive_count, negative_sum, negative_count = loss_ids.pair_similarity_sums(flat, ids)
        # A mean of the pair similarities: each step's mean weighted by its number of pairs.
        self._pos_metric.update_state(ops.divide_no_nan(positive_sum, positive_count), sample_weight=positive_count)
        self._neg_metric.update_state(ops.divide_no_nan(negative_sum, negative_count), sample_weight=negative_count)
        if self._accuracy_metric is not None and y is not None:
            targets = _multiview.per_view_targets(y, num_views, self.num_classes)
            self._accuracy_metric.update_state(
                targets,
                _multiview.flatten_views(y_pred["logits"], 1),
                sample_weight=_multiview.repeat_sample_weight(sample_weight, num_views),
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "projection_head": keras.saving.serialize_keras_object(self.projection_head),
                "num_classes": self.num_classes,
                "ce_weight": self.ce_weight,
                "classifier_normalize": self.classifier_normalize,
                "queue_size": self.queue_size,
                "key_encoder_momentum": self.key_encoder_momentum,
                "queue_label_dim": self.queue_label_dim,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["projection_head"] = keras.saving.deserialize_keras_object(config["projection_head"])
        return cls(**config)


def _own_class_ids(batch):
    """int32 `[batch]` ids, distinct over the global batch: every sample its own class.

    Under `tf.distribute` the loss gathers labels from every replica, so the ids of
    replica r are `r, r + R, r + 2R, ...` (R replicas); on one device `0 .. batch - 1`.
    """
    ids = ops.arange(batch, dtype="int32")
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return ids
    replica = ops.cast(context.replica_id_in_sync_group, "int32")
    return ids * context.num_replicas_in_sync + replica
