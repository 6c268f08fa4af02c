"""`LinearClassifier`: stage 2 of SupCon, a linear layer on a frozen encoder.

Khosla et al. 2020 (arXiv 2004.11362) §3/§4: "we freeze the learned representation
and then train a linear classifier on top of it using a cross-entropy loss".
"""

import keras
from keras import ops

from supcon.models import _multiview
from supcon.models.heads import ClassifierHead
from supcon.models.heads import check_num_classes


@keras.saving.register_keras_serializable(package="supcon")
class LinearClassifier(keras.Model):
    """Frozen encoder (batch norm in inference mode) + one trainable linear layer.

    The constructor sets `encoder.trainable = False`. The encoder object is shared, not
    copied (as in Keras' transfer-learning guide): a `SupConModel` holding the same
    encoder is frozen too until you set `encoder.trainable = True` again. The encoder
    always runs with `training=False`, so its batch-norm statistics never change.

    `call` returns float32 **logits** `[N, num_classes]` (not probabilities); compile
    accordingly, e.g.
    `compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"])`, and apply `keras.ops.softmax` for probabilities. It is a plain
    Keras model: `fit`/`evaluate`/`predict` use Keras' own steps on the eval pipeline's
    `(images [B, H, W, 3], labels [B])`.

    Args:
        encoder: `keras.Model`, images `[N, H, W, 3]` -> `[N, F]`; `model.encoder`.
        num_classes: int >= 2.
        normalize: bool, L2-normalize the embedding before the linear layer. Default False.
        **kwargs: `keras.Model` arguments.

    Attributes:
        encoder: the frozen encoder.
        classifier_head: the `ClassifierHead` (embedding -> logits), used by
            `export_saved_model(model, path, classifier=linear_classifier)`.

    Example:
        >>> import supcon
        >>> encoder = supcon.models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(16, 16, 3))
        >>> classifier = LinearClassifier(encoder, num_classes=3)
        >>> classifier.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        >>> images = keras.random.uniform((4, 16, 16, 3), maxval=255.0, seed=0)
        >>> history = classifier.fit(images, keras.ops.array([0, 1, 2, 0]), epochs=1, verbose=0)
        >>> len(classifier.trainable_weights)
        2
    """

    def __init__(self, encoder, num_classes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise TypeError(f"`encoder` must be a keras.Model. Received: encoder={encoder!r}")
        if len(encoder.output_shape) != 2 or encoder.output_shape[-1] is None:
            raise ValueError(
                "`encoder` must map images to embeddings [N, F] with a known F. "
                f"Received: encoder.output_shape={encoder.output_shape}"
            )
        check_num_classes(num_classes)
        encoder.trainable = False
        self.encoder = encoder
        self.num_classes = num_classes
        self.normalize = bool(normalize)
        self.classifier_head = ClassifierHead(num_classes, normalize=normalize, stop_gradient=True, name="classifier_head")
        self.classifier_head.build(tuple(encoder.output_shape))
        self.built = True

    def call(self, inputs, training=False):
        del training  # The encoder is frozen: always inference mode.
        inputs = ops.convert_to_tensor(inputs)
        if len(inputs.shape) != 4:
            raise ValueError(
                f"LinearClassifier takes images [B, H, W, 3]. Received: inputs with shape={tuple(inputs.shape)}"
            )
        _multiview.check_images(inputs, self.encoder)
        return self.classifier_head(self.encoder(inputs, training=False))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "num_classes": self.num_classes,
                "normalize": self.normalize,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
