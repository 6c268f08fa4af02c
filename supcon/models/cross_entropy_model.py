"""`CrossEntropyModel`: the cross-entropy baseline with the same encoder as `SupConModel`.

Khosla et al. 2020 (arXiv 2004.11362) §4 compares SupCon with a ResNet trained end to
end with the softmax cross-entropy; this model is that baseline, built on any encoder
from `supcon.models.resnet(...)` so comparisons use identical encoders.
"""

import keras
from keras import ops

from supcon.models import _multiview
from supcon.models.heads import ClassifierHead
from supcon.models.heads import check_num_classes


@keras.saving.register_keras_serializable(package="supcon")
class CrossEntropyModel(_multiview.MultiViewModel):
    """Encoder + linear classifier trained end to end with (label-smoothed) cross-entropy.

    The loss is built in: compile with an optimizer only (`model.compile(optimizer=...)`).
    It is `CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)`
    (Szegedy et al. 2016, arXiv 1512.00567 §7: targets `(1 - eps) * y + eps / C`), plus any
    regularization losses of the layers.

    Data: `(images, labels)` with images `[B, H, W, 3]` (the eval pipeline) or views
    `[B, V, H, W, 3]` / a tuple of V batches (the training pipeline; every view is a
    training example with its sample's label), labels int `[B]` or float distributions
    `[B, C]` / `[B, V, C]` (MixUp/CutMix; soft cross-entropy).

    Metrics (built in; `compile(metrics=...)` is not used): `loss`, `accuracy` (argmax of
    the logits vs. the class id or the argmax of the distribution).

    Outputs (`call`/`predict`): dict with float32 `embedding` `[N, F]`, `logits` and
    `probabilities` `[N, C]` (a view axis is added for views input).

    Args:
        encoder: `keras.Model`, images `[N, H, W, 3]` -> `[N, F]`; `model.encoder`.
        num_classes: int >= 2.
        label_smoothing: float in [0, 1). Default 0.
        **kwargs: `keras.Model` arguments.

    Example:
        >>> import supcon
        >>> encoder = supcon.models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(16, 16, 3))
        >>> model = CrossEntropyModel(encoder, num_classes=3, label_smoothing=0.1)
        >>> model.compile(optimizer="sgd")
        >>> images = keras.random.uniform((4, 16, 16, 3), maxval=255.0, seed=0)
        >>> history = model.fit(images, keras.ops.array([0, 1, 2, 0]), epochs=1, verbose=0)
        >>> sorted(model.predict(images, verbose=0))
        ['embedding', 'logits', 'probabilities']
    """

    def __init__(self, encoder, num_classes, label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise TypeError(f"`encoder` must be a keras.Model. Received: encoder={encoder!r}")
        if len(encoder.output_shape) != 2 or encoder.output_shape[-1] is None:
            raise ValueError(
                "`encoder` must map images to embeddings [N, F] with a known F. "
                f"Received: encoder.output_shape={encoder.output_shape}"
            )
        check_num_classes(num_classes)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or not 0 <= label_smoothing < 1:
            raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        self.encoder = encoder
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        self.classifier_head = ClassifierHead(num_classes, stop_gradient=False, name="classifier_head")
        self.classifier_head.build(tuple(encoder.output_shape))
        self._accuracy_metric = keras.metrics.CategoricalAccuracy(name="accuracy")
        self.built = True

    @property
    def _extra_metrics(self):
        return [self._accuracy_metric]

    def call(self, inputs, training=False):
        images, num_views = _multiview.fold_views(inputs)
        _multiview.check_images(images, self.encoder)
        embedding = self.encoder(images, training=training)
        logits = self.classifier_head(embedding)
        outputs = {
            "embedding": ops.cast(embedding, "float32"),
            "logits": logits,
            "probabilities": ops.softmax(logits, axis=-1),
        }
        return {k: _multiview.unfold(v, num_views) for k, v in outputs.items()}

    def _check_targets(self, y):
        if y is None:
            raise ValueError("CrossEntropyModel needs labels: the data must be (images, labels). Received: y=None")
        return _multiview.check_targets(y, self.num_classes)

    def _targets_and_weights(self, y, y_pred, sample_weight):
        if y is None:
            raise ValueError("CrossEntropyModel needs labels: the data must be (images, labels). Received: y=None")
        logits = y_pred["logits"]
        num_views = logits.shape[1] if len(logits.shape) == 3 else None
        targets = _multiview.per_view_targets(y, num_views, self.num_classes)
        weights = _multiview.repeat_sample_weight(sample_weight, num_views)
        return targets, _multiview.flatten_views(logits, 1), weights

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Label-smoothed cross-entropy of the logits (+ layer regularization losses).

        Returns:
            float32 scalar: this replica's share (Keras mean losses divide by the number
            of replicas under tf.distribute).
        """
        del x, training
        if getattr(self, "loss", None) is not None:
            raise ValueError(
                "CrossEntropyModel has its loss built in (cross-entropy with the model's "
                f"label_smoothing); compile it with an optimizer only. Received: loss={self.loss!r}"
            )
        targets, logits, weights = self._targets_and_weights(y, y_pred, sample_weight)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=self.label_smoothing)(
            targets, logits, sample_weight=weights
        )
        if self.losses:
            # Regularizers are global, so each replica adds its share (as Keras does).
            regularization = ops.sum([ops.cast(ops.sum(l), "float32") for l in self.losses])
            loss = loss + regularization / ops.cast(_multiview.num_replicas(), "float32")
        return loss

    def _update_extra_metrics(self, y, y_pred, sample_weight):
        targets, logits, weights = self._targets_and_weights(y, y_pred, sample_weight)
        self._accuracy_metric.update_state(targets, logits, sample_weight=weights)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
