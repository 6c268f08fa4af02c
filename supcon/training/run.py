"""One training run from a `TrainConfig`: pre-train, linear-evaluate, export (no absl FLAGS here).

The run is a few steps, each one call: `start` (strategy, seeds) → `build_data` →
`build_training_model` → `claim_run_directory` (nothing is written before) → `pretrain` (resumable) →
`train_linear_classifier` → `evaluate` → `export`. `train.py` calls them in that order;
`train(config)` does the same in one call, for notebooks. Resuming at any step is
`supcon.training.resume`; the Keras multi-worker workaround is `supcon.training.multi_worker`;
the run directory (its config, lock and `--overwrite`) is `supcon.training.run_dir`.
"""

import dataclasses
import os

import keras
import tensorflow as tf

from supcon import data as data_lib
from supcon.choices import JIT_COMPILE
from supcon import losses as losses_lib
from supcon import models as models_lib
from supcon.training import checkpointing, resume, run_dir, schedules
from supcon.training import strategy as strategy_lib
from supcon.training.config import TrainConfig
from supcon.training import linear_stage
from supcon.training.multi_worker import keras_multi_worker_calls
from supcon.training.optimizers import build_optimizer
from supcon.training.precision import set_precision
from supcon.training import summaries
from supcon.training.summaries import EpochSummaries
from supcon.training.teacher import load_teacher, with_teacher_targets


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
    options = config.contrast_options()
    if config.method == "supcon":
        return losses_lib.SupConLoss(options)
    if config.method == "simclr":
        return losses_lib.SimCLRLoss(options)
    if config.method == "genscl":
        return losses_lib.GenSCLLoss(options, kd_alpha=config.kd_alpha)
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
    if config.encoder == "resnet":
        encoder = models_lib.resnet(
            config.depth,
            version=config.resnet_version,
            width_multiplier=config.width_multiplier,
            stem=config.stem,
            input_shape=(image_size, image_size, 3),
            synchronized_bn=config.synchronized_bn,
        )
    else:
        encoder = models_lib.keras_application(config.encoder, (image_size, image_size, 3))
    if config.method == "ce":
        model = models_lib.CrossEntropyModel(
            encoder, num_classes, label_smoothing=config.label_smoothing
        )
    else:
        model = models_lib.SupConModel(
            encoder,
            models_lib.ProjectionHead(dims=config.head_dims, batch_norm=config.head_batch_norm,
                                      normalize_input=config.head_normalize_input,
                                      last_bias=config.head_last_bias),
            num_classes=num_classes if config.online_classifier else None,
            **(dict(queue_size=config.queue_size, key_encoder_momentum=config.key_encoder_momentum,
                    queue_label_dim=num_classes if config.method == "genscl" else None)
               if config.queue_size else {}),
        )
    model(tf.zeros((1, image_size, image_size, 3)), training=False)  # Creates every variable.
    return model


def resolve_jit_compile(setting, *, num_replicas, device_type):
    """Whether the training step is compiled with XLA (`--jit_compile`).

    `"auto"` compiles for a single GPU or TPU replica only: on CPU the ResNet-18 step at
    64x2 views measured 46.8 views/s with XLA against 62.7 without (2 cores, issue 12's
    figures), and under multi-replica `tf.distribute` it stays off, as Keras's own
    `jit_compile="auto"` leaves it (not measured here).

    Args:
        setting: `"auto"`, `"true"` or `"false"`.
        num_replicas: int, replicas in sync of the run's strategy.
        device_type: `"CPU"`, `"GPU"` or `"TPU"`, the device the replicas run on.

    Returns:
        bool.

    Example:
        >>> resolve_jit_compile("auto", num_replicas=1, device_type="GPU")
        True
    """
    if setting not in JIT_COMPILE:
        raise ValueError(f"`jit_compile` must be one of {JIT_COMPILE}. Received: jit_compile={setting!r}")
    if setting != "auto":
        return setting == "true"
    return num_replicas == 1 and device_type in ("GPU", "TPU")


def _device_type(strategy):
    """`"TPU"`, `"GPU"` or `"CPU"`: the kind of device the strategy's replicas run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "TPU"
    devices = getattr(strategy.extended, "worker_devices", None) or ()
    if any("GPU" in device.upper() for device in devices):
        return "GPU"
    if not devices and tf.config.list_logical_devices("GPU"):  # Default strategy: TF's placement.
        return "GPU"
    return "CPU"


def _nan_hint(config):
    return (
        f"Try a lower --learning_rate (now {config.learning_rate}), a higher --temperature "
        f"(now {config.temperature}), more --warmup_epochs (now {config.warmup_epochs}), or "
        "--precision=float32."
    )


VIEW_GRID_IMAGES = 8  # Rows of the augmented-views grid written at the start of a run.
PROJECTOR_EXAMPLES = 2000  # Test embeddings written for TensorBoard's Projector.


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
        lock: the `run_dir.RunLock` on `model_dir` once claimed (chief only), else None.
    """

    config: TrainConfig
    strategy: tf.distribute.Strategy
    chief: bool
    out_dir: str
    worker: int
    lock: object = None


@dataclasses.dataclass
class RunData:
    """The run's data: sources, sizes and the infinite, seeded training stream.

    Attributes:
        train_source, test_source: `supcon.data.Source`s.
        num_classes: int.
        image_size: int, square side of the model's input.
        steps_per_epoch: int.
        stream_from: function `batch index -> tf.data.Dataset`, the training stream from that
            batch on (a pure function of the seed and the index: `supcon.training.resume`).
    """

    train_source: object
    test_source: object
    num_classes: int
    image_size: int
    steps_per_epoch: int
    stream_from: object


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
    teacher = load_teacher(config.teacher) if config.teacher else None

    def stream_from(start_batch):
        stream = data_lib.pipeline(
            train_source,
            "train",
            views=config.views,
            augmentation=config.augmentation,
            crop_scale=(config.crop_min_scale, 1.0),
            color_jitter_strength=config.color_jitter_strength,
            blur=config.blur,
            num_ops=config.randaugment_layers,
            magnitude=config.randaugment_magnitude,
            batch_size=config.batch_size,
            training=True,
            seed=config.seed,
            mixup=config.mixup,
            cutmix=config.cutmix,
            image_size=image_size,
            repeat=True,  # One infinite stream: element indices (and augmentations) never repeat.
            start_batch=start_batch,
            augment_on=config.augment_on,
        )
        if teacher is not None:
            stream = with_teacher_targets(stream, teacher, num_classes=num_classes,
                                          temperature=config.kd_temperature)
        elif config.method == "genscl" and not (config.mixup or config.cutmix):
            # GenSCL contrasts label distributions: plain labels are one-hot ones (SupCon's positives).
            stream = stream.map(lambda views, labels: (views, tf.one_hot(labels, num_classes)))
        return stream

    stream_from(0)  # Builds (and so checks) the pipeline before any work.
    return RunData(train_source, test_source, num_classes, image_size, steps_per_epoch,
                   stream_from)


def claim_run_directory(run, data):
    """Locks `model_dir` and writes `run_config.json`, refusing a directory with another run.

    The lock (`run_dir.RunLock`, kept in `run.lock`) stops a second process from training into
    the same directory; it is released when the process ends, or by `release_run_directory`.

    Args:
        run: `Run`.
        data: `RunData` (for `num_classes` and `image_size`).

    Returns:
        str: "new", "resume" or "extend" (`run_dir.prepare`); "new" on non-chief workers.
    """
    if not run.chief:
        os.makedirs(run.out_dir, exist_ok=True)
        return "new"
    run_config = dict(run.config.to_json(), num_classes=data.num_classes,
                      image_size=data.image_size)
    run.lock = run_dir.RunLock(run.config.model_dir)
    try:
        # A run written before a setting existed had its default (`prepare`'s `defaults`).
        state = run_dir.prepare(run.config.model_dir, run_config, overwrite=run.config.overwrite,
                                defaults=TrainConfig().to_json())
    except BaseException:
        release_run_directory(run)
        raise
    if state == "extend":
        print(f"Extending the run in {run.config.model_dir} to {run.config.epochs} epochs.")
    return state


def release_run_directory(run):
    """Releases the lock taken by `claim_run_directory` (idempotent).

    Args:
        run: `Run`.
    """
    if run.lock is not None:
        run.lock.release()
        run.lock = None


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
        warmup_start=config.warmup_start_learning_rate,
        min_fraction=config.lr_min_fraction,
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
        jit_compile = resolve_jit_compile(
            config.jit_compile, num_replicas=run.strategy.num_replicas_in_sync,
            device_type=_device_type(run.strategy))
        model.compile(
            optimizer=optimizer,
            **({"loss": loss} if loss is not None else {}),
            steps_per_execution=config.steps_per_execution,
            jit_compile=jit_compile,
        )
        if config.augment_on == "device":
            # Static shapes under XLA (every op on the whole batch); gathers otherwise.
            model.train_augmentation = data_lib.DeviceAugmentation(
                config.augmentation, data.image_size, seed=config.seed,
                color_jitter_strength=config.color_jitter_strength, blur=config.blur,
                static_shapes=jit_compile)
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
    summaries_dir = os.path.join(config.model_dir, "summaries")
    if run.chief:
        callbacks.append(EpochSummaries(summaries_dir))
        if start_step == 0:  # What the augmentation does to the first images, once per run.
            views, _ = next(iter(data.stream_from(0)))
            if model.train_augmentation is not None:  # --augment_on=device: crops so far.
                views = model.train_augmentation(views, step=0, replica=0)
            summaries.write_view_grid(tf.summary.create_file_writer(summaries_dir),
                                      views[:VIEW_GRID_IMAGES])
    if start_step < total_steps:
        try:
            with keras_multi_worker_calls([model], run.strategy):
                resume.fit_from(
                    model,
                    data.stream_from,
                    start_step=start_step,
                    steps_per_epoch=data.steps_per_epoch,
                    epochs=config.epochs,
                    callbacks=callbacks,
                    verbose=config.verbose,
                )
        except KeyboardInterrupt:
            # Ctrl-C lands between steps (a step is one uninterruptible graph call), so the
            # variables are those of step `iterations`: keep them, and say how to go on.
            checkpointer.save_if_new()
            raise checkpointing.RunInterrupted(
                f"Interrupted at step {checkpointer.step} of {total_steps}; the checkpoint is in "
                f"{checkpointer.directory}. Run the same command to resume."
            ) from None
    # Saved before stage 2, which freezes the (shared) encoder.
    model.save(os.path.join(run.out_dir, "model.keras"))
    if run.chief:
        _write_projector(run, data, model, summaries_dir)


def _write_projector(run, data, model, summaries_dir):
    """The first `PROJECTOR_EXAMPLES` test embeddings with their labels, for TensorBoard."""
    from supcon.evaluation import inference  # noqa: PLC0415  (TensorFlow and NumPy only)

    test_images = data_lib.pipeline(
        data.test_source, "test", batch_size=run.config.linear_batch_size, training=False,
        image_size=data.image_size, seed=run.config.seed)
    embeddings, labels = inference.embed(model.encoder, test_images, PROJECTOR_EXAMPLES)
    summaries.write_embedding_projector(summaries_dir, embeddings, labels, data.test_source.info.class_names)


def train_linear_classifier(run, data, model):
    """Stage 2: `supcon.training.linear_stage.train_linear_classifier` with the run's `linear_*` settings.

    The classifier depends on the seed alone (a seeded stream read `steps_per_epoch` batches per
    epoch, the head initialized right after reseeding), so a rerun after a kill trains the same one.

    Args:
        run: `Run` (`linear_*` fields of its config).
        data: `RunData`.
        model: the pre-trained model (its encoder is frozen here).

    Returns:
        The trained, compiled `LinearClassifier`, or None for `method="ce"` (whose model has
        its own classifier) and for `linear_epochs=0` (no stage 2: nothing to report).
    """
    config = run.config
    if config.method == "ce" or not config.linear_epochs:
        return None
    classifier, _ = linear_stage.train_linear_classifier(
        model.encoder, data.train_source, linear_stage.LinearStageSettings.from_config(config),
        num_classes=data.num_classes, image_size=data.image_size, seed=config.seed,
        strategy=run.strategy, verbose=config.verbose,
    )
    return classifier


def evaluate(run, data, model, classifier):
    """Test accuracy of the linear classifier (or of the cross-entropy model itself).

    Every worker evaluates the whole test split, so all of them report the same numbers.

    Args:
        run: `Run`.
        data: `RunData`.
        model: the pre-trained model.
        classifier: the `LinearClassifier`, or None (`method="ce"`, or no stage 2).

    Returns:
        dict: `test_accuracy` (None without a classifier), `method`, `dataset`, `steps`.
    """
    config = run.config
    steps = int(model.optimizer.iterations.numpy())
    if classifier is None and config.method != "ce":
        print("No test accuracy: stage 2 was skipped (--linear_epochs=0). "
              f"`eval.py --model_dir={config.model_dir}` trains a classifier and reports it.")
        return {"test_accuracy": None, "method": config.method, "dataset": config.dataset,
                "steps": steps}
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
        "steps": steps,
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
    model = build_training_model(run, data)
    claim_run_directory(run, data)
    try:
        pretrain(run, data, model)
        classifier = train_linear_classifier(run, data, model)
        results = evaluate(run, data, model, classifier)
        export(run, data, model, classifier, results)
    finally:
        release_run_directory(run)
    return results
