"""One training run from a `TrainConfig`: pre-train, linear-evaluate, export (no absl FLAGS here).

The run is a few steps, each one call: `start` (strategy, seeds) → `build_data` →
`claim_run_directory` → `build_training_model` → `pretrain` (resumable) →
`train_linear_classifier` → `evaluate` → `export`. `train.py` calls them in that order;
`train(config)` does the same in one call, for notebooks.

Resuming mid-epoch, deterministically: the training data is one infinite stream, a deterministic
function of the seed (`pipeline(..., repeat=True)`), consumed in order by `fit` with a fixed
`steps_per_epoch` (Keras keeps one iterator across epochs when `steps_per_epoch` is set). The
checkpoint holds the model and optimizer, whose `iterations` is the global step `s`; a resumed
run skips the first `s` batches of the stream, finishes the interrupted epoch with one short
`fit`, then runs the remaining epochs. With `deterministic=True` (op determinism) the resumed run
ends with the same weights as an uninterrupted one. Skipping re-reads the skipped batches
(augmentations included), which costs input-pipeline time on resume only.
"""

import contextlib
import dataclasses
import os

import keras
import tensorflow as tf

from supcon import data as data_lib
from supcon import losses as losses_lib
from supcon import models as models_lib
from supcon.training import checkpointing, run_dir, schedules
from supcon.training import strategy as strategy_lib
from supcon.training.config import TrainConfig
from supcon.training.linear_stage import compile_linear_classifier
from supcon.training.optimizers import build_optimizer
from supcon.training.precision import set_precision
from supcon.training.summaries import EpochSummaries
from supcon.training.teacher import load_teacher, with_teacher_targets

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


@contextlib.contextmanager
def keras_multi_worker_calls(models, strategy, *, local=False):
    """Lets Keras 3 `fit`/`evaluate` run under `MultiWorkerMirroredStrategy`.

    Keras 3.15's TF trainer has two bugs with this strategy (keras-team/keras#20585,
    tensorflow/tensorflow#72388):
      1. Before each `fit` it "symbolically builds" the model by reducing the first distributed
         batch with `strategy.reduce(..., axis=None)`, which fails on a `(views, labels)`
         structure ("Attempt to convert a value (PerReplica...)"). That only happens when the
         model remembers the strategy it was created under: with the reference cleared, Keras
         takes the strategy from the enclosing `strategy.scope()` (our models are built
         explicitly beforehand, so the build is not needed).
      2. It reduces each step's logs with `strategy.reduce("MEAN", v, axis=0)`, which fails on
         scalars. The step's logs are reshaped to `[1]` here, so that reduction becomes the
         mean over all replicas of all workers: the metrics are aggregated correctly.
    With `local=True` the block runs outside the strategy (evaluating the whole test set on
    every worker). Other strategies are untouched.

    Args:
        models: the `keras.Model`s whose `fit`/`evaluate` run in the block.
        strategy: the run's strategy.
        local: bool, run the calls without distribution. Defaults to False.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    # Private Keras attribute and an instance-level `train_step`, on purpose: see the docstring.
    saved = [m._distribute_strategy for m in models]  # noqa: SLF001
    for model in models:
        model._distribute_strategy = None  # noqa: SLF001
        model.train_step = _rank1_logs(model.train_step)
    try:
        with contextlib.nullcontext() if local else strategy.scope():
            yield
    finally:
        for model, value in zip(models, saved):
            model._distribute_strategy = value  # noqa: SLF001
            del model.train_step


def _rank1_logs(train_step):
    def step(data):
        return {name: tf.reshape(value, [1]) for name, value in train_step(data).items()}

    return step


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
            shuffle=False,  # The stream shuffles itself, deterministically.
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
            shuffle=False,
            callbacks=callbacks,
            verbose=verbose,
        )


@dataclasses.dataclass
class Run:
    """What the steps of a run share: its config, strategy and where this process writes.

    Attributes:
        config: `TrainConfig`.
        strategy: the `tf.distribute.Strategy`.
        chief: bool, whether this process owns `config.model_dir`.
        out_dir: str, where this process writes (`model_dir`, or `model_dir/workerN` for the
            other workers of a multi-worker run).
        worker: int, this worker's index.
    """

    config: TrainConfig
    strategy: tf.distribute.Strategy
    chief: bool
    out_dir: str
    worker: int


@dataclasses.dataclass
class RunData:
    """The run's data: sources, sizes and the infinite, seeded training stream."""

    train_source: object
    test_source: object
    num_classes: int
    image_size: int
    steps_per_epoch: int
    stream: tf.data.Dataset


def start(config, *, strategy=None):
    """Strategy, seeds, op determinism and precision.

    The strategy comes first: multi-worker collectives must be configured before the TF runtime
    starts.

    Args:
        config: `TrainConfig`.
        strategy: optional `tf.distribute.Strategy`; default built from `config.strategy`.

    Returns:
        A `Run`.
    """
    strategy = strategy or strategy_lib.build_strategy(config.strategy, tpu=config.tpu)
    set_up(config)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"`batch_size` must be divisible by the {replicas} replicas. "
            f"Received: batch_size={config.batch_size}"
        )
    chief = strategy_lib.is_chief(strategy)
    worker = strategy_lib.task_id(strategy)
    out_dir = config.model_dir if chief else os.path.join(config.model_dir, f"worker{worker}")
    return Run(config=config, strategy=strategy, chief=chief, out_dir=out_dir, worker=worker)


def build_data(run):
    """Loads the splits and builds the training stream (`pipeline(..., repeat=True)`).

    Args:
        run: `Run`.

    Returns:
        `RunData`.
    """
    config = run.config
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
    return RunData(train_source, test_source, num_classes, image_size, steps_per_epoch, stream)


def claim_run_directory(run, data):
    """Writes `run_config.json`, refusing a `model_dir` that holds a different run.

    Args:
        run: `Run`.
        data: `RunData` (for `num_classes` and `image_size`).

    Returns:
        bool, whether the same run was found there (it will resume).
    """
    if not run.chief:
        os.makedirs(run.out_dir, exist_ok=True)
        return False
    run_config = dict(run.config.to_json(), num_classes=data.num_classes,
                      image_size=data.image_size)
    return run_dir.prepare(run.config.model_dir, run_config, overwrite=run.config.overwrite)


def build_training_model(run, data):
    """The compiled pre-training model, its optimizer built (ready to restore a checkpoint).

    Args:
        run: `Run`.
        data: `RunData`.

    Returns:
        A compiled `SupConModel` or `CrossEntropyModel`.
    """
    config = run.config
    schedule = schedules.build_schedule(
        config.learning_rate,
        batch_size=config.batch_size,
        steps_per_epoch=data.steps_per_epoch,
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        schedule=config.lr_schedule,
        decay_rate=config.lr_decay_rate,
        epochs_per_decay=config.lr_epochs_per_decay,
        boundaries=config.lr_boundaries,
    )
    with run.strategy.scope():
        model = build_model(config, data.num_classes, data.image_size)
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
    return model


def pretrain(run, data, model):
    """Resumes from the newest readable checkpoint and trains to `epochs`; saves `model.keras`.

    Args:
        run: `Run`.
        data: `RunData`.
        model: from `build_training_model`.
    """
    config = run.config
    checkpointer = checkpointing.RunCheckpointer(
        os.path.join(config.model_dir, "checkpoints"),
        model,
        model.optimizer,
        max_to_keep=config.keep_checkpoints,
        chief=run.chief,
        worker_id=run.worker,
    )
    start_step = checkpointer.restore_latest() or 0
    total_steps = config.epochs * data.steps_per_epoch
    if start_step:
        print(f"Resuming from step {start_step} of {total_steps}.")
    callbacks = [
        checkpointing.NonFiniteLossGuard(
            model.optimizer, hint=_nan_hint(config), checkpoint_dir=checkpointer.directory
        ),
        checkpointing.CheckpointCallback(checkpointer, every_steps=config.checkpoint_steps),
    ]
    if run.chief:
        callbacks.append(EpochSummaries(os.path.join(config.model_dir, "summaries")))
    if start_step < total_steps:
        with keras_multi_worker_calls([model], run.strategy):
            _fit_from(
                model,
                data.stream,
                start_step=start_step,
                steps_per_epoch=data.steps_per_epoch,
                epochs=config.epochs,
                callbacks=callbacks,
                verbose=config.verbose,
            )
    # Saved before stage 2, which freezes the (shared) encoder.
    model.save(os.path.join(run.out_dir, "model.keras"))


def train_linear_classifier(run, data, model):
    """Stage 2: `LinearClassifier(model.encoder)` on shuffled, un-augmented training images.

    Args:
        run: `Run` (`linear_*` fields of its config).
        data: `RunData`.
        model: the pre-trained model (its encoder is frozen here).

    Returns:
        The trained, compiled `LinearClassifier`, or None for `method="ce"` (whose model has
        its own classifier).
    """
    config = run.config
    if config.method == "ce":
        return None
    # The training pipeline with one un-augmented view: shuffled each epoch, seeded.
    images = data_lib.pipeline(
        data.train_source, "train", views=1, augmentation="none",
        batch_size=config.linear_batch_size, training=True, image_size=data.image_size,
        seed=config.seed,
    ).map(lambda views, labels: (views[:, 0], labels))
    steps_per_epoch = max(data.train_source.num_examples // config.linear_batch_size, 1)
    with run.strategy.scope():
        classifier = compile_linear_classifier(
            model.encoder, data.num_classes, optimizer=config.linear_optimizer,
            learning_rate=config.linear_learning_rate, batch_size=config.linear_batch_size,
            decay_steps=config.linear_epochs * steps_per_epoch, momentum=_LINEAR_MOMENTUM,
        )
    if config.linear_epochs:
        with keras_multi_worker_calls([classifier], run.strategy):
            classifier.fit(images, epochs=config.linear_epochs, shuffle=False,
                           verbose=config.verbose)
    return classifier


def evaluate(run, data, model, classifier):
    """Test accuracy of the linear classifier (or of the cross-entropy model itself).

    Every worker evaluates the whole test split, so all of them report the same numbers.

    Args:
        run: `Run`.
        data: `RunData`.
        model: the pre-trained model.
        classifier: the `LinearClassifier`, or None for `method="ce"`.

    Returns:
        dict: `test_accuracy`, `method`, `dataset`, `steps`.
    """
    config = run.config
    test_images = data_lib.pipeline(
        data.test_source, "test", batch_size=config.linear_batch_size, training=False,
        image_size=data.image_size, seed=config.seed,
    )
    scored = classifier if classifier is not None else model
    with keras_multi_worker_calls([scored], run.strategy, local=True):
        scores = scored.evaluate(test_images, return_dict=True, verbose=0)
    results = {
        "test_accuracy": float(scores["accuracy"]),
        "method": config.method,
        "dataset": config.dataset,
        "steps": int(model.optimizer.iterations.numpy()),
    }
    print(f"Test accuracy ({config.method}, {config.dataset}): {results['test_accuracy']:.4f}")
    return results


def export(run, data, model, classifier, results):
    """Writes `classifier.keras`, `saved_model/` (chief only) and `results.json`.

    Args:
        run: `Run`.
        data: `RunData`.
        model: the pre-trained model (`model.keras` was written by `pretrain`).
        classifier: the `LinearClassifier` or None.
        results: dict from `evaluate`.
    """
    if classifier is not None:
        classifier.save(os.path.join(run.out_dir, "classifier.keras"))
    if run.chief:
        models_lib.export_saved_model(
            model, os.path.join(run.out_dir, "saved_model"), classifier=classifier,
            image_size=data.image_size,
        )
    run_dir.write_json_atomic(os.path.join(run.out_dir, run_dir.RESULTS), results)


def train(config=TrainConfig(), *, strategy=None):
    """The whole run, step by step as `train.py` does it, into `config.model_dir`.

    Args:
        config: `TrainConfig`. Defaults to the main job (SupCon on `digits`).
        strategy: optional `tf.distribute.Strategy`; default built from `config.strategy`.

    Returns:
        dict, the content of `results.json` (`test_accuracy`, `method`, ...).
    """
    run = start(config, strategy=strategy)
    data = build_data(run)
    claim_run_directory(run, data)
    model = build_training_model(run, data)
    pretrain(run, data, model)
    classifier = train_linear_classifier(run, data, model)
    results = evaluate(run, data, model, classifier)
    export(run, data, model, classifier, results)
    return results
