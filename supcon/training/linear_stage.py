"""Stage 2 of SupCon: a linear classifier trained on the frozen encoder, one implementation.

Khosla et al. 2020 (arXiv 2004.11362) §3 and §4: "we freeze the learned representation and then train
a linear classifier on top of it using a cross-entropy loss". `train.py` (`supcon.training.run`) and
`eval.py` (`supcon.evaluation`, when it trains a classifier) both call `train_linear_classifier` with
a `LinearStageSettings`, read from the run's `linear_*` settings (`TrainConfig` fields, or the keys of
an older run's `run_config.json`).

The pieces are those of pre-training: the schedule is `supcon.training.schedules.build_schedule`
(learning rate per 256 images scaled by batch/256, linear warmup from 0, then cosine / exponential /
piecewise / constant), the optimizer `supcon.training.optimizers.build_optimizer` (coupled weight
decay), the data `supcon.data.pipeline(..., views=1, repeat=True)`. The two official recipes it
reproduces (see `configs/`):

* google-research/google-research `supcon/scripts/supcon_imagenet_resnet50.sh` (ImageNet): RMSProp
  (`utils.build_optimizer`: `tf.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.9, epsilon)` with
  `--stage_2_rmsprop_epsilon=0.001`, `hparams_flags.py`), 0.05 per 256 images, 90 epochs, 12 epochs
  of warmup (`--stage_2_warmup_epochs` default), then staircase exponential decay x0.97 every 0.5
  epoch counted from the end of warmup (`utils.build_learning_rate_schedule`), weight decay 1e-6
  as `coeff * sum(tf.nn.l2_loss(v))` over the head's kernel *and bias* (`configs.sh`:
  `--use_bias_weight_decay=True`), label smoothing 0.05 (`IMAGENET_FLAGS`).
* HobbitLong/SupContrast `main_linear.py` (CIFAR): SGD momentum 0.9, lr 5 at batch 512 (README),
  x0.2 after epochs 60, 75 and 90 of 100, no weight decay, no warmup, training images
  `RandomResizedCrop(32, scale=(0.2, 1)) + RandomHorizontalFlip` (`main_ce.set_loader`).

Exactness: the training stream is a pure function of the seed (`pipeline(..., repeat=True)` read
`steps_per_epoch` batches per epoch) and the head is initialized right after reseeding, so a killed
and re-run stage 2 trains the same classifier (`supcon.training.resume`).
"""

import dataclasses
import math

import keras
import tensorflow as tf
from keras import ops

from supcon import choices
from supcon import data as data_lib
from supcon import models as models_lib
from supcon.training.config import TrainConfig
from supcon.training.multi_worker import keras_multi_worker_calls
from supcon.training.optimizers import build_optimizer
from supcon.training.schedules import build_schedule

# google-research supcon `hparams_flags.py`: `--stage_2_rmsprop_epsilon=0.001` (stage 1 uses 1.0).
# TF1's `tf.train.RMSPropOptimizer` updates `mom = momentum * mom + lr * g / sqrt(ms + epsilon)`;
# Keras 3's `RMSprop.update_step` computes `lr * g / sqrt(velocity + epsilon)`, epsilon inside the
# square root too, so 1e-3 means the same in both. (TF1's decay 0.9 is Keras's `rho=0.9`, its
# default.) One difference remains: TF1 starts the mean square `ms` at 1, Keras's `velocity` at 0,
# so Keras's first updates are larger (up to lr / sqrt(1 - rho), about 3.2 lr, per weight at step 1,
# where TF1's is about lr * |g|); the official recipe's 12 warmup epochs start from a learning rate
# of 0, which covers those steps.
RMSPROP_EPSILON = 1e-3

_TRAIN_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
# Settings that are not `linear_` + field name: the augmentation policies' parameters are the run's
# (google-research supcon's preprocessing hparams, `hparams.ImagePreprocessing`, are not per stage).
_SHARED_KEYS = ("crop_min_scale", "color_jitter_strength", "blur", "randaugment_layers", "randaugment_magnitude")
_BLUR = ("auto", "on", "off")


def _config_key(field_name):
    return field_name if field_name in _SHARED_KEYS else f"linear_{field_name}"


@dataclasses.dataclass(frozen=True)
class LinearStageSettings:
    """Every setting of stage 2; the `TrainConfig` field of each is `linear_<name>` (the last five:
    `<name>`, the run's augmentation parameters).

    Defaults are `TrainConfig`'s (the digits main job's stage 2). Build it from a run with
    `from_config`. Every error names the `TrainConfig` field (`linear_epochs`, ...).

    Attributes:
        epochs: int >= 0; 0 is "no stage 2" (`train_linear_classifier` needs >= 1).
        optimizer: one of `supcon.training.OPTIMIZERS`.
        batch_size: int >= 1, global batch size.
        learning_rate: float > 0, per 256 images (the peak is `learning_rate * batch_size / 256`).
        momentum: float in [0, 1), of lars/sgd/nesterov/rmsprop.
        weight_decay: float >= 0, coupled (L2) for sgd/rmsprop/adam, decoupled for adamw/lamb;
            applied to the head's kernel and bias alike.
        warmup_epochs: float in [0, epochs), linear warmup from 0.
        lr_schedule: one of `supcon.training.SCHEDULES`, the decay after warmup.
        lr_decay_rate: float >= 0, factor of "exponential" and "piecewise".
        lr_epochs_per_decay: float > 0, epochs between "exponential" decays (staircase).
        lr_boundaries: tuple of epochs (strictly increasing, after the warmup) where "piecewise"
            multiplies the rate by `lr_decay_rate`.
        label_smoothing: float in [0, 1), of the cross-entropy.
        augmentation: a `supcon.data` augmentation name for the training images ("none": the
            un-augmented, resized images).
        normalize_input: bool, the classifier sees the L2-normalized embedding (the official TF
            code's `normalize_embedding`, its ImageNet SupCon runs).
        crop_min_scale: float in (0, 1], the run's smallest crop area (`crop_flip` and the other
            cropping policies crop `(crop_min_scale, 1)` of the image).
        color_jitter_strength: float >= 0, the run's colour strength (simaugment,
            stacked_randaugment).
        blur: "auto", "on" or "off", the run's Gaussian blur (simaugment, stacked_randaugment).
        randaugment_layers: int >= 0, the run's RandAugment N.
        randaugment_magnitude: float in [0, 10], the run's RandAugment M.

    Example:
        >>> settings = LinearStageSettings.from_config({"linear_epochs": 3, "linear_optimizer": "sgd"})
        >>> settings.epochs, settings.optimizer, settings.batch_size == TrainConfig().linear_batch_size
        (3, 'sgd', True)
    """

    epochs: int = _TRAIN_DEFAULTS["linear_epochs"]
    optimizer: str = _TRAIN_DEFAULTS["linear_optimizer"]
    batch_size: int = _TRAIN_DEFAULTS["linear_batch_size"]
    learning_rate: float = _TRAIN_DEFAULTS["linear_learning_rate"]
    momentum: float = _TRAIN_DEFAULTS["linear_momentum"]
    weight_decay: float = _TRAIN_DEFAULTS["linear_weight_decay"]
    warmup_epochs: float = _TRAIN_DEFAULTS["linear_warmup_epochs"]
    lr_schedule: str = _TRAIN_DEFAULTS["linear_lr_schedule"]
    lr_decay_rate: float = _TRAIN_DEFAULTS["linear_lr_decay_rate"]
    lr_epochs_per_decay: float = _TRAIN_DEFAULTS["linear_lr_epochs_per_decay"]
    lr_boundaries: tuple = _TRAIN_DEFAULTS["linear_lr_boundaries"]
    label_smoothing: float = _TRAIN_DEFAULTS["linear_label_smoothing"]
    augmentation: str = _TRAIN_DEFAULTS["linear_augmentation"]
    normalize_input: bool = _TRAIN_DEFAULTS["linear_normalize_input"]
    crop_min_scale: float = _TRAIN_DEFAULTS["crop_min_scale"]
    color_jitter_strength: float = _TRAIN_DEFAULTS["color_jitter_strength"]
    blur: str = _TRAIN_DEFAULTS["blur"]
    randaugment_layers: int = _TRAIN_DEFAULTS["randaugment_layers"]
    randaugment_magnitude: float = _TRAIN_DEFAULTS["randaugment_magnitude"]

    @classmethod
    def from_config(cls, config, **overrides):
        """The stage-2 settings of a run.

        Args:
            config: a `TrainConfig`, or a dict with its keys (a run's `run_config.json`); a key
                missing (an older run) or None takes `TrainConfig`'s default.
            **overrides: field names of this class (`epochs=5`, ...) replacing the run's values.

        Returns:
            `LinearStageSettings`.
        """
        if isinstance(config, TrainConfig):
            config = config.to_json()
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a TrainConfig or a dict. Received: config={config!r}")
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"Unknown stage-2 settings {unknown}; expected some of {names}.")
        values = {}
        for name in names:
            value = config.get(_config_key(name))
            values[name] = getattr(cls, name) if value is None else value
        values.update(overrides)
        return cls(**values)

    def __post_init__(self):
        def fail(name, expected):
            key = _config_key(name)
            raise ValueError(f"`{key}` must be {expected}. Received: {key}={getattr(self, name)!r}")

        def is_number(value):
            return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)

        def is_int(value):
            return not isinstance(value, bool) and isinstance(value, int)

        if isinstance(self.lr_boundaries, str) or not hasattr(self.lr_boundaries, "__iter__"):
            fail("lr_boundaries", "a sequence of epochs")
        object.__setattr__(self, "lr_boundaries", tuple(self.lr_boundaries))
        if not all(is_number(b) for b in self.lr_boundaries):
            fail("lr_boundaries", "a sequence of epochs")
        object.__setattr__(self, "lr_boundaries", tuple(float(b) for b in self.lr_boundaries))
        if not is_int(self.epochs) or self.epochs < 0:
            fail("epochs", "an int >= 0")
        if self.optimizer not in choices.OPTIMIZERS:
            fail("optimizer", f"one of {choices.OPTIMIZERS}")
        if not is_int(self.batch_size) or self.batch_size < 1:
            fail("batch_size", "an int >= 1")
        if not is_number(self.learning_rate) or self.learning_rate <= 0:
            fail("learning_rate", "a number > 0 (per 256 images)")
        if not is_number(self.momentum) or not 0 <= self.momentum < 1:
            fail("momentum", "in [0, 1)")
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            fail("weight_decay", ">= 0")
        if not is_number(self.warmup_epochs) or self.warmup_epochs < 0 or (
                self.epochs and self.warmup_epochs >= self.epochs):
            fail("warmup_epochs", f"in [0, linear_epochs={self.epochs})")
        if self.lr_schedule not in choices.SCHEDULES:
            fail("lr_schedule", f"one of {choices.SCHEDULES}")
        if not is_number(self.lr_decay_rate) or self.lr_decay_rate < 0:
            fail("lr_decay_rate", ">= 0")
        if not is_number(self.lr_epochs_per_decay) or self.lr_epochs_per_decay <= 0:
            fail("lr_epochs_per_decay", "> 0")
        boundaries = list(self.lr_boundaries)
        if self.lr_schedule == "piecewise" and (
                not boundaries or boundaries != sorted(set(boundaries))
                or boundaries[0] <= self.warmup_epochs):
            fail("lr_boundaries", f"strictly increasing epochs after linear_warmup_epochs={self.warmup_epochs} "
                 "(linear_lr_schedule='piecewise')")
        if not is_number(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            fail("label_smoothing", "in [0, 1)")
        if self.augmentation not in choices.AUGMENTATIONS:
            fail("augmentation", f"one of {choices.AUGMENTATIONS}")
        if not is_number(self.crop_min_scale) or not 0 < self.crop_min_scale <= 1:
            fail("crop_min_scale", "in (0, 1]")
        if not is_number(self.color_jitter_strength) or self.color_jitter_strength < 0:
            fail("color_jitter_strength", ">= 0")
        if self.blur not in _BLUR:
            fail("blur", f"one of {_BLUR}")
        if not is_int(self.randaugment_layers) or self.randaugment_layers < 0:
            fail("randaugment_layers", "an int >= 0")
        if not is_number(self.randaugment_magnitude) or not 0 <= self.randaugment_magnitude <= 10:
            fail("randaugment_magnitude", "in [0, 10]")

    def to_json(self):
        """The settings as a JSON-compatible dict (field names; `lr_boundaries` a list)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}


def smoothed_sparse_categorical_crossentropy(y_true, y_pred, label_smoothing=0.0):
    """Cross-entropy of logits against integer labels smoothed to `(1 - ε) one_hot + ε / K`.

    `keras.losses.SparseCategoricalCrossentropy` has no label smoothing, and the data pipelines
    give integer labels (which `evaluate` and the `accuracy` metric also take), so the labels
    become one-hot here, inside the loss. Szegedy et al. 2016 (arXiv 1512.00567) §7.

    Args:
        y_true: int labels `[B]` (or `[B, 1]`).
        y_pred: float logits `[B, K]`.
        label_smoothing: float ε in [0, 1). Defaults to 0 (plain cross-entropy).

    Returns:
        float32 per-example losses `[B]`.

    Example:
        >>> loss = smoothed_sparse_categorical_crossentropy([0], [[0.0, 0.0]], label_smoothing=0.1)
        >>> round(float(loss[0]), 4)  # log 2: smoothing does not change it for equal logits.
        0.6931
    """
    # float32 whatever the compute dtype: a softmax in float16 loses the small probabilities.
    logits = ops.cast(y_pred, "float32")
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    targets = ops.one_hot(labels, logits.shape[-1], dtype="float32")
    return keras.losses.categorical_crossentropy(targets, logits, from_logits=True,
                                                 label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="supcon")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """`smoothed_sparse_categorical_crossentropy` as a Keras loss (logits, integer labels).

    Args:
        label_smoothing: float ε in [0, 1). Defaults to 0.
        reduction: Keras reduction. Defaults to "sum_over_batch_size".
        name: str. Defaults to "smoothed_sparse_categorical_crossentropy".
        dtype: Keras loss dtype. Defaults to None.

    Example:
        >>> loss = SmoothedSparseCategoricalCrossentropy(label_smoothing=0.05)
        >>> SmoothedSparseCategoricalCrossentropy.from_config(loss.get_config()).label_smoothing
        0.05
    """

    def __init__(self, label_smoothing=0.0, reduction="sum_over_batch_size",
                 name="smoothed_sparse_categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or not (
                0 <= label_smoothing < 1):
            raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return smoothed_sparse_categorical_crossentropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update({"label_smoothing": self.label_smoothing})
        return config


def steps_per_epoch(settings, num_examples):
    """Batches per stage-2 epoch: `max(num_examples // batch_size, 1)` (the last partial one dropped).

    Example:
        >>> steps_per_epoch(LinearStageSettings(batch_size=512), 50_000)
        97
    """
    return max(int(num_examples) // settings.batch_size, 1)


def linear_schedule(settings, steps_per_epoch):
    """The classifier's learning-rate schedule: `build_schedule` with the `linear_*` settings.

    Args:
        settings: `LinearStageSettings` with `epochs >= 1`.
        steps_per_epoch: int >= 1.

    Returns:
        A `supcon.training.LinearWarmup` schedule (actual, batch-scaled rates).

    Example:
        >>> schedule = linear_schedule(LinearStageSettings(epochs=2, learning_rate=0.1, batch_size=512,
        ...                                                lr_schedule="constant"), steps_per_epoch=10)
        >>> round(float(schedule(0)), 4)
        0.2
    """
    return build_schedule(
        settings.learning_rate,
        batch_size=settings.batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=settings.epochs,
        warmup_epochs=settings.warmup_epochs,
        schedule=settings.lr_schedule,
        decay_rate=settings.lr_decay_rate,
        epochs_per_decay=settings.lr_epochs_per_decay,
        boundaries=settings.lr_boundaries,
    )


def linear_optimizer(settings, steps_per_epoch):
    """The classifier's optimizer: `build_optimizer` with the `linear_*` settings and schedule.

    Weight decay covers the head's bias as well as its kernel (no exclusions: the encoder's
    batch norm is frozen, and the official ImageNet stage 2 decays the bias,
    `--use_bias_weight_decay=True`). RMSProp takes the official stage-2 epsilon, `RMSPROP_EPSILON`.

    Args:
        settings: `LinearStageSettings` with `epochs >= 1`.
        steps_per_epoch: int >= 1.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    return build_optimizer(settings.optimizer, linear_schedule(settings, steps_per_epoch),
                           weight_decay=settings.weight_decay, momentum=settings.momentum,
                           exclusions=(), rmsprop_epsilon=RMSPROP_EPSILON)


def linear_training_data(train_source, settings, *, image_size, seed):
    """The stage-2 training stream: one view per image, shuffled and augmented per the seed.

    Args:
        train_source: `supcon.data.Source`, the training split.
        settings: `LinearStageSettings` (`augmentation` and the run's parameters of it, `batch_size`).
        image_size: int, the model's input side.
        seed: int, seed of the order and of the augmentations.

    Returns:
        `(dataset, steps_per_epoch)`: an infinite `tf.data.Dataset` of `(images [B, H, W, 3]
        float32 0..255, labels [B] int32)`, a pure function of `seed`, and the batches per epoch.
    """
    stream = data_lib.pipeline(
        train_source, "train", views=1, augmentation=settings.augmentation,
        crop_scale=(settings.crop_min_scale, 1.0), color_jitter_strength=settings.color_jitter_strength,
        blur=settings.blur, num_ops=settings.randaugment_layers, magnitude=settings.randaugment_magnitude,
        batch_size=settings.batch_size, training=True, image_size=image_size, seed=seed, repeat=True,
    ).map(lambda views, labels: (views[:, 0], labels))
    return stream, steps_per_epoch(settings, train_source.num_examples)


def build_linear_classifier(encoder, num_classes, settings, *, steps_per_epoch):
    """A `supcon.models.LinearClassifier` compiled with the stage-2 optimizer and loss.

    Call it inside `strategy.scope()` to train under a `tf.distribute` strategy.

    Args:
        encoder: the pre-trained `keras.Model` (images -> embeddings); frozen by the classifier.
        num_classes: int.
        settings: `LinearStageSettings` with `epochs >= 1`.
        steps_per_epoch: int >= 1, of the data it will be fit on (for the schedule).

    Returns:
        The compiled `LinearClassifier` (logits; metric `accuracy`).

    Example:
        >>> from supcon import models
        >>> encoder = models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(8, 8, 3))
        >>> classifier = build_linear_classifier(encoder, 10, LinearStageSettings(
        ...     epochs=1, optimizer="sgd", learning_rate=0.1, batch_size=32), steps_per_epoch=100)
        >>> classifier.encoder.trainable, round(float(classifier.optimizer.learning_rate), 5)
        (False, 0.0125)
    """
    classifier = models_lib.LinearClassifier(encoder, num_classes, normalize=settings.normalize_input)
    classifier.compile(
        optimizer=linear_optimizer(settings, steps_per_epoch),
        loss=SmoothedSparseCategoricalCrossentropy(label_smoothing=settings.label_smoothing),
        metrics=["accuracy"],
    )
    return classifier


def train_linear_classifier(encoder, train_source, settings, *, num_classes, image_size, seed,
                            strategy=None, verbose=0):
    """Stage 2: builds the linear classifier on the frozen encoder and fits it.

    The weights depend on the seed alone: it reseeds (`keras.utils.set_random_seed(seed)`) before
    building the head, whose initial weights must not depend on how many random ops ran before
    (a resumed run ran fewer), and the training stream is a pure function of the seed.

    Args:
        encoder: the pre-trained `keras.Model` (images -> embeddings); frozen here.
        train_source: `supcon.data.Source`, the training split.
        settings: `LinearStageSettings` with `epochs >= 1`.
        num_classes: int.
        image_size: int, the model's input side.
        seed: int.
        strategy: `tf.distribute.Strategy` to train under. Defaults to the current one.
        verbose: Keras verbosity of `fit`. Defaults to 0.

    Returns:
        `(classifier, history)`: the trained, compiled `LinearClassifier` and `{metric: [float per
        epoch]}`.
    """
    if not isinstance(settings, LinearStageSettings):
        raise TypeError(f"`settings` must be a LinearStageSettings. Received: settings={settings!r}")
    if settings.epochs < 1:
        raise ValueError(f"`linear_epochs` must be >= 1 to train a classifier. Received: "
                         f"linear_epochs={settings.epochs}")
    strategy = strategy or tf.distribute.get_strategy()
    stream, steps = linear_training_data(train_source, settings, image_size=image_size, seed=seed)
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        classifier = build_linear_classifier(encoder, num_classes, settings, steps_per_epoch=steps)
    with keras_multi_worker_calls([classifier], strategy):
        # shuffle=False: the stream shuffles itself, per the seed.
        history = classifier.fit(stream, epochs=settings.epochs, steps_per_epoch=steps, shuffle=False,
                                 verbose=verbose).history
    return classifier, {key: [float(v) for v in values] for key, values in history.items()}
