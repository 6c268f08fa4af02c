"""One training run from a `TrainConfig`: pre-train, linear-evaluate, export (no absl FLAGS here).

`train(config)` is what `train.py` calls; notebooks can call it too. Its sections follow the
run: set-up → run directory → data → model → resume → fit → linear classifier → evaluate → export.

Resuming mid-epoch, deterministically: the training data is one infinite stream, a deterministic
function of the seed (`pipeline(..., repeat=True)`), consumed in order by `fit` with a fixed
`steps_per_epoch` (Keras keeps one iterator across epochs when `steps_per_epoch` is set). The
checkpoint holds the model and optimizer, whose `iterations` is the global step `s`; a resumed
run skips the first `s` batches of the stream, finishes the interrupted epoch with one short
`fit`, then runs the remaining epochs. With `deterministic=True` (op determinism) the resumed run
ends with the same weights as an uninterrupted one. Skipping re-reads the skipped batches
(augmentations included), which costs input-pipeline time on resume only.
"""

import logging
import os

import keras
import tensorflow as tf

from supcon import data as data_lib
from supcon import losses as losses_lib
from supcon import models as models_lib
from supcon.training import checkpointing, run_dir, schedules
from supcon.training import strategy as strategy_lib
from supcon.training.config import TrainConfig
from supcon.training.optimizers import build_optimizer
from supcon.training.precision import set_precision
from supcon.training.summaries import EpochSummaries
from supcon.training.teacher import load_teacher, with_teacher_targets

logger = logging.getLogger(__name__)

# Stage 2 (Khosla et al. §4, linear evaluation): a linear layer on the frozen encoder, trained
# with cosine decay and no weight decay, as is usual for linear probes; momentum for SGD-family.
_LINEAR_MOMENTUM = 0.9


def set_up(config):
    """Seeds, op determinism and the dtype policy (call before building anything).

    Args:
        config: `TrainConfig`.
    """
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    set_precision(config.precision)


def build_loss(config):
    """The contrastive loss of `config.method` (None for "ce", whose model has its own loss).

    Args:
        config: `TrainConfig`.

    Returns:
        A `keras.losses.Loss` or None.
    """
    common = dict(
        temperature=config.temperature,
        base_temperature=config.base_temperature,
        contrast_mode=config.contrast_mode,
        block_size=config.loss_block_size,
    )
    if config.method == "supcon":
        return losses_lib.SupConLoss(
            summation=config.summation,
            denominator=config.denominator,
            positives_cap=config.positives_cap,
            **common,
        )
    if config.method == "simclr":
        return losses_lib.SimCLRLoss(**common)
    if config.method == "genscl":
        return losses_lib.GenSCLLoss(**common)
    return None


def build_model(config, num_classes, image_size):
    """The encoder and the pre-training model (`SupConModel` or `CrossEntropyModel`), built.

    Args:
        config: `TrainConfig`.
        num_classes: int.
        image_size: int, square input size.

    Returns:
        The model (uncompiled).
    """
    encoder = models_lib.resnet(
        config.depth,
        version=config.resnet_version,
        width_multiplier=config.width_multiplier,
        stem=config.stem,
        input_shape=(image_size, image_size, 3),
        synchronized_bn=config.synchronized_bn,
    )
    if config.method == "ce":
        model = models_lib.CrossEntropyModel(
            encoder, num_classes, label_smoothing=config.label_smoothing
        )
    else:
        model = models_lib.SupConModel(
            encoder,
            models_lib.ProjectionHead(dims=config.head_dims, batch_norm=config.head_batch_norm),
            num_classes=num_classes if config.online_classifier else None,
        )
    model(tf.zeros((1, image_size, image_size, 3)), training=False)  # Creates every variable.
    return model


def _nan_hint(config):
    return (
        f"Try a lower --learning_rate (now {config.learning_rate}), a higher --temperature "
        f"(now {config.temperature}), more --warmup_epochs (now {config.warmup_epochs}), or "
        "--precision=float32."
    )


def _fit_from(model, stream, *, start_step, steps_per_epoch, epochs, callbacks, verbose):
    """Runs `fit` from global step `start_step` to `epochs * steps_per_epoch` on `stream`."""
    epoch, batch = divmod(start_step, steps_per_epoch)
    if batch:  # Finish the interrupted epoch first.
        model.fit(
            stream.skip(start_step),
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=steps_per_epoch - batch,
            callbacks=callbacks,
            verbose=verbose,
        )
        epoch += 1
    if epoch < epochs:
        model.fit(
            stream.skip(epoch * steps_per_epoch),
            initial_epoch=epoch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )


def train(config=TrainConfig(), *, strategy=None):
    """Pre-trains, linear-evaluates and exports one run into `config.model_dir`.

    Args:
        config: `TrainConfig`. Defaults to the main job (SupCon on `digits`).
        strategy: optional `tf.distribute.Strategy`; default built from `config.strategy`.

    Returns:
        dict, the content of `results.json` (`test_accuracy`, `method`, ...).
    """
    # --- Set-up: seeds, determinism, precision, strategy.
    set_up(config)
    strategy = strategy or strategy_lib.build_strategy(config.strategy, tpu=config.tpu)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"`batch_size` must be divisible by the {replicas} replicas. "
            f"Received: batch_size={config.batch_size}"
        )
    chief = strategy_lib.is_chief(strategy)
    worker = strategy_lib.task_id(strategy)

    # --- Data.
    train_source = data_lib.load(config.dataset, "train", data_dir=config.data_dir, seed=config.seed)
    test_source = data_lib.load(config.dataset, "test", data_dir=config.data_dir, seed=config.seed)
    num_classes = int(train_source.info.num_classes)
    image_size = int(config.image_size or train_source.info.image_shape[0])
    steps_per_epoch = config.steps_per_epoch or train_source.num_examples // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"`batch_size` is larger than the {train_source.num_examples} training examples. "
            f"Received: batch_size={config.batch_size}"
        )
    stream = data_lib.pipeline(
        train_source,
        "train",
        views=config.views,
        augmentation=config.augmentation,
        crop_scale=(config.crop_min_scale, 1.0),
        batch_size=config.batch_size,
        training=True,
        seed=config.seed,
        mixup=config.mixup,
        cutmix=config.cutmix,
        image_size=image_size,
        repeat=True,  # One infinite stream: element indices (and augmentations) never repeat.
    )
    if config.teacher:
        stream = with_teacher_targets(
            stream, load_teacher(config.teacher), num_classes=num_classes,
            weight=config.teacher_weight,
        )

    # --- Run directory: refuse a different run, resume the same one.
    out_dir = config.model_dir if chief else os.path.join(config.model_dir, f"worker{worker}")
    run_config = dict(config.to_json(), num_classes=num_classes, image_size=image_size)
    if chief:
        run_dir.prepare(config.model_dir, run_config, overwrite=config.overwrite)
    else:
        os.makedirs(out_dir, exist_ok=True)

    # --- Model, optimizer, loss.
    schedule = schedules.build_schedule(
        config.learning_rate,
        batch_size=config.batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        schedule=config.lr_schedule,
        decay_rate=config.lr_decay_rate,
        epochs_per_decay=config.lr_epochs_per_decay,
        boundaries=config.lr_boundaries,
    )
    with strategy.scope():
        model = build_model(config, num_classes, image_size)
        optimizer = build_optimizer(
            config.optimizer,
            schedule,
            weight_decay=config.weight_decay,
            momentum=config.momentum,
            lars_eta=config.lars_eta,
        )
        loss = build_loss(config)
        model.compile(
            optimizer=optimizer,
            **({"loss": loss} if loss is not None else {}),
            steps_per_execution=config.steps_per_execution,
        )
        model.optimizer.build(model.trainable_variables)

    # --- Resume from the newest readable checkpoint.
    checkpointer = checkpointing.RunCheckpointer(
        os.path.join(config.model_dir, "checkpoints"),
        model,
        model.optimizer,
        max_to_keep=config.keep_checkpoints,
        chief=chief,
        worker_id=worker,
    )
    start_step = checkpointer.restore_latest() or 0
    total_steps = config.epochs * steps_per_epoch
    if start_step:
        print(f"Resuming from step {start_step} of {total_steps}.")

    # --- Pre-train.
    callbacks = [
        checkpointing.NonFiniteLossGuard(
            model.optimizer, hint=_nan_hint(config), checkpoint_dir=checkpointer.directory
        ),
        checkpointing.CheckpointCallback(checkpointer, every_steps=config.checkpoint_steps),
    ]
    if chief:
        callbacks.append(EpochSummaries(os.path.join(config.model_dir, "summaries")))
    if start_step < total_steps:
        _fit_from(
            model,
            stream,
            start_step=start_step,
            steps_per_epoch=steps_per_epoch,
            epochs=config.epochs,
            callbacks=callbacks,
            verbose=config.verbose,
        )

    # Saved before stage 2, which freezes the (shared) encoder.
    model.save(os.path.join(out_dir, "model.keras"))

    # --- Linear classifier on the frozen encoder (the cross-entropy model has its own).
    test_data = data_lib.pipeline(
        test_source, "test", batch_size=config.linear_batch_size, training=False,
        image_size=image_size, seed=config.seed,
    )
    classifier = None
    if config.method == "ce":
        with strategy.scope():
            scores = model.evaluate(test_data, return_dict=True, verbose=0)
    else:
        classifier = train_linear_classifier(
            config, strategy, model.encoder, train_source, num_classes, image_size
        )
        scores = classifier.evaluate(test_data, return_dict=True, verbose=0)
    results = {
        "test_accuracy": float(scores["accuracy"]),
        "method": config.method,
        "dataset": config.dataset,
        "steps": int(model.optimizer.iterations.numpy()),
    }
    print(f"Test accuracy ({config.method}, {config.dataset}): {results['test_accuracy']:.4f}")

    # --- Export.
    if classifier is not None:
        classifier.save(os.path.join(out_dir, "classifier.keras"))
    if chief:
        models_lib.export_saved_model(
            model, os.path.join(out_dir, "saved_model"), classifier=classifier,
            image_size=image_size,
        )
    run_dir.write_json_atomic(os.path.join(out_dir, run_dir.RESULTS), results)
    return results


def train_linear_classifier(config, strategy, encoder, train_source, num_classes, image_size):
    """Stage 2: trains `LinearClassifier(encoder)` on shuffled, un-augmented training images.

    Args:
        config: `TrainConfig` (`linear_*` fields, `seed`).
        strategy: the run's `tf.distribute.Strategy`.
        encoder: the pre-trained encoder (frozen here).
        train_source: the training split from `supcon.data.load`.
        num_classes: int.
        image_size: int.

    Returns:
        The trained, compiled `LinearClassifier`.
    """
    # The training pipeline with one un-augmented view: shuffled each epoch, seeded.
    data = data_lib.pipeline(
        train_source, "train", views=1, augmentation="none", batch_size=config.linear_batch_size,
        training=True, image_size=image_size, seed=config.seed,
    ).map(lambda views, labels: (views[:, 0], labels))
    steps_per_epoch = max(train_source.num_examples // config.linear_batch_size, 1)
    with strategy.scope():
        classifier = models_lib.LinearClassifier(encoder, num_classes)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            schedules.scaled_learning_rate(config.linear_learning_rate, config.linear_batch_size),
            decay_steps=max(config.linear_epochs * steps_per_epoch, 1),
        )
        classifier.compile(
            optimizer=build_optimizer(
                config.linear_optimizer, learning_rate, momentum=_LINEAR_MOMENTUM
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    if config.linear_epochs:
        classifier.fit(data, epochs=config.linear_epochs, verbose=config.verbose)
    return classifier
