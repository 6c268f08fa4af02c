"""Every flag of `train.py` and `eval.py`, its validation, and `flags.md`.

This is the only library module that touches absl flags (besides the entry points `train.py` and
`eval.py`). Nothing is defined at import: `train.py` calls `define_train_flags()` and `eval.py`
calls `define_eval_flags()`, so the two scripts can share flag names (`--dataset`, `--seed`, ...)
with their own meanings, and tests can define either set into a fresh `absl.flags.FlagValues`.
`train_config()` turns parsed training flags into a `supcon.training.TrainConfig`, whose field
names are the flag names. Bad values fail while the flags are parsed, before any work starts,
with the flag's name and the allowed values.

`python -m supcon.flags --markdown > flags.md` (`make flags`) writes the reference of both.
"""

import dataclasses
import sys

from absl import app, flags, logging

from supcon import console

from supcon import choices
from supcon.training.config import TrainConfig

FLAGS = flags.FLAGS

_TRAIN_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


class _Definer:
    """Defines flags into one `FlagValues` and remembers them by section (for `flags.md`)."""

    def __init__(self, flag_values):
        self.flag_values = flag_values
        self.sections = []  # [(title, [flag names])] in definition order.

    def section(self, title):
        self.sections.append((title, []))

    def define(self, kind, name, default, help_text, **kwargs):
        if kind == "enum":
            flags.DEFINE_enum(name, default, kwargs.pop("enum_values"), help_text,
                              flag_values=self.flag_values, **kwargs)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, help_text,
                                             flag_values=self.flag_values, **kwargs)
        self.sections[-1][1].append(name)

    def train(self, kind, name, help_text, **kwargs):
        """Defines `--name` with `TrainConfig`'s default for it (each default is written once)."""
        default = _TRAIN_DEFAULTS[name]
        if isinstance(default, tuple):
            default = [str(v) for v in default]
        elif kind == "enum":
            default = str(default)
        self.define(kind, name, default, help_text, **kwargs)


def _int_list(name, values, positive=True):
    try:
        parsed = [float(v) if name == "lr_boundaries" else int(v) for v in values]
    except ValueError:
        return False
    return all(v > 0 for v in parsed) if positive else True


def _check_augment_on(f):
    """`--augment_on=device` needs a policy with a device stage, and no host stage after it."""
    if f["augment_on"] != "device":
        return True
    if f["augmentation"] not in choices.DEVICE_AUGMENTATIONS:
        raise flags.ValidationError(
            "--augment_on=device runs the stage after the crop on the accelerator, which exists for "
            f"--augmentation={' or '.join(choices.DEVICE_AUGMENTATIONS)}; expected one of those (or "
            f"--augment_on=host). Received: --augmentation={f['augmentation']}")
    host_after = [f"--{n}={f[n]}" for n in ("mixup", "cutmix") if f[n]]
    host_after += [f"--teacher={f['teacher']}"] if f["teacher"] else []
    if host_after:
        raise flags.ValidationError(
            "--augment_on=device colours the views inside the training step, after what the host does to "
            "the batch (MixUp/CutMix, the teacher's targets), which need the finished views; expected "
            f"--augment_on=host with them. Received: {' '.join(host_after)}")
    return True


def define_train_flags(flag_values=FLAGS):
    """Defines every `train.py` flag (one per `TrainConfig` field) and its validators.

    Paper constants behind the defaults live in the modules that use them
    (`supcon.losses.PAPER_TEMPERATURE`, `supcon.training.lars.DEFAULT_ETA`, ...).

    Args:
        flag_values: `absl.flags.FlagValues` to define into. Defaults to the global `FLAGS`.

    Returns:
        list of `(section title, [flag names])`, in definition order.
    """
    d = _Definer(flag_values)
    d.section("Data")
    d.train("string", "dataset", "Dataset: `digits` (embedded, offline), any TFDS name (e.g. `cifar10`), or `folder:PATH`.")
    d.train("string", "data_dir", "Where TFDS data or downloads live (TFDS default if unset).")
    d.train("integer", "image_size", "Square training/eval image size in pixels; 0 keeps the dataset's own size.", lower_bound=0)
    d.train("integer", "views", "Augmented views per image in the contrastive batch.", lower_bound=1)
    d.train("enum", "augmentation", "Augmentation policy of the training views (Khosla et al. §4, App. B).",
            enum_values=list(choices.AUGMENTATIONS))
    d.train("float", "crop_min_scale",
            "Smallest area fraction of the random resized crop (paper and recipes: 0.08, SimCLR's; the digits main job: 0.5).",
            lower_bound=1e-3, upper_bound=1.0)
    d.train("float", "color_jitter_strength", "SimCLR's colour strength s: brightness, contrast, saturation, hue "
            "jitter of 0.8s, 0.8s, 0.8s, 0.2s (0.5: the SupCon CIFAR code's ColorJitter(0.4, 0.4, 0.4, 0.1); 1.0: ImageNet).",
            lower_bound=0.0, upper_bound=2.5)
    d.train("enum", "blur", "Gaussian blur (p 0.5) in simaugment / stacked_randaugment: auto blurs images of 128 px or more.",
            enum_values=["auto", "on", "off"])
    d.train("integer", "randaugment_layers", "RandAugment: ops applied per image (N).", lower_bound=0)
    d.train("float", "randaugment_magnitude", "RandAugment: magnitude M on the 0..10 scale.",
            lower_bound=0.0, upper_bound=10.0)
    d.train("float", "mixup", "MixUp Beta(α, α) parameter; 0 disables (genscl/ce only).",
            lower_bound=0.0)
    d.train("float", "cutmix", "CutMix Beta(α, α) parameter; 0 disables (genscl/ce only).",
            lower_bound=0.0)
    d.train("enum", "augment_on", "Where the stage after the crop (flip, colour jitter, grayscale, blur) runs: host "
            "(tf.data, batched) or device (batched inside the training step, on the accelerator, per-image "
            "parameters from the same distributions); decoding and cropping stay on the host. device: "
            + " or ".join(choices.DEVICE_AUGMENTATIONS) + " only, without --mixup/--cutmix/--teacher.",
            enum_values=list(choices.AUGMENT_ON))

    d.section("Method and encoder")
    d.train("enum", "method", "supcon: SupCon loss (Khosla et al. Eq. 2); simclr: NT-Xent; genscl: generalized "
            "SupCon on label distributions (Kim et al. 2022); ce: cross-entropy baseline.",
            enum_values=list(choices.METHODS))
    d.train("string", "encoder", "resnet: supcon's ResNet (--depth, --resnet_version, --width_multiplier, --stem); "
            "keras:NAME: any keras.applications architecture (e.g. keras:EfficientNetB0), randomly initialized, "
            "include_top=False, average-pooled; tested: keras:EfficientNetB0, keras:MobileNetV2.")
    d.train("enum", "depth", "ResNet depth.", enum_values=["18", "34", "50", "101", "152", "200"])
    d.train("enum", "resnet_version", "v1 (post-activation, the paper's) or v2 (pre-activation).",
            enum_values=["v1", "v2"])
    d.train("float", "width_multiplier", "Scales every ResNet width (1 = the paper's).",
            lower_bound=1e-3)
    d.train("enum", "stem", "imagenet: 7x7/2 conv + max-pool; cifar: 3x3/1 conv, no pool.",
            enum_values=["cifar", "imagenet"])
    d.train("boolean", "synchronized_bn", "Cross-replica batch norm (the paper on TPUs).")
    d.train("list", "head_dims", "Projection head layer sizes, the last one the embedding fed to the loss "
            "(paper: 2048,128 for ResNet-50).")
    d.train("boolean", "head_batch_norm", "Batch norm in the projection head's hidden layers.")
    d.train("boolean", "head_normalize_input", "L2-normalize the encoder output before the projection head "
            "(the official ImageNet SupCon runs).")
    d.train("boolean", "head_last_bias", "A bias in the projection head's last layer (none in the official TF code).")
    d.train("boolean", "online_classifier", "Train a linear head on stop_gradient(embedding) during pre-training (reports `accuracy`; "
            "never changes the encoder).")

    d.section("Loss")
    d.train("float", "temperature", "Contrastive temperature τ (paper: 0.1 SupCon, 0.5 SimCLR).",
            lower_bound=1e-6)
    d.train("float", "base_temperature", "Loss scale τ/τ_base of the reference code; unset means τ_base = τ (scale 1).",
            lower_bound=1e-6)
    d.train("enum", "contrast_mode", "all: every view is an anchor; one: only the first view.",
            enum_values=["all", "one"])
    d.train("enum", "summation", "outside: L^sup_out (Eq. 2, the paper's best); inside: L^sup_in (Eq. 3).",
            enum_values=["outside", "inside"])
    d.train("enum", "denominator", "Terms in the softmax denominator: all others, one positive, or only negatives.",
            enum_values=["all", "one_positive", "only_negatives"])
    d.train("integer", "positives_cap", "Use at most this many positives per anchor.",
            lower_bound=1)
    d.train("integer", "loss_block_size", "Compute the loss in blocks of this many anchors (memory for large batches).",
            lower_bound=1)
    d.train("integer", "queue_size", "Keys kept in a labelled memory queue, contrasted with every batch (0: no queue): "
            "small-batch SupCon/SimCLR/GenSCL with a momentum key encoder (MoCo, He et al. 2020).", lower_bound=0)
    d.train("float", "key_encoder_momentum", "Momentum m of the key encoder: key = m * key + (1 - m) * query after "
            "each step (with --queue_size).", lower_bound=0.0, upper_bound=0.999999)
    d.train("string", "teacher", "GenSCL knowledge distillation: a SavedModel (from train.py's saved_model/); "
            "its softmax(logits / --kd_temperature) on the same views is a second target, weighted by --kd_alpha.")
    d.train("float", "kd_alpha", "GenSCL distillation: the loss on the label distributions plus kd_alpha times the "
            "loss on the teacher's distributions (kiimmm/GenSCL `--KD-alpha`).", lower_bound=0.0)
    d.train("float", "kd_temperature", "Temperature of the teacher's softmax (kiimmm/GenSCL `--KD-temp`).",
            lower_bound=1e-6)
    d.train("float", "label_smoothing", "Label smoothing ε of the cross-entropy baseline.",
            lower_bound=0.0, upper_bound=0.999)

    d.section("Optimization")
    d.train("integer", "batch_size", "Global batch size (split across replicas).", lower_bound=1)
    d.train("integer", "epochs", "Pre-training epochs.", lower_bound=1)
    d.train("integer", "steps_per_epoch",
            "Steps per epoch; 0 means one pass over the training split (its size // batch_size).",
            lower_bound=0)
    d.train("enum", "optimizer", "Optimizer; weight decay spares BN and biases for all.",
            enum_values=list(choices.OPTIMIZERS))
    d.train("float", "learning_rate", "Peak learning rate per 256 images; the run uses learning_rate * batch_size / 256.",
            lower_bound=1e-12)
    d.train("float", "momentum", "Momentum of lars/sgd/nesterov/rmsprop.", lower_bound=0.0,
            upper_bound=0.999999)
    d.train("float", "lars_eta", "LARS trust coefficient η.", lower_bound=1e-12)
    d.train("float", "weight_decay", "Weight decay λ (coupled L2 for lars/sgd/nesterov/rmsprop/adam, decoupled for adamw/lamb).",
            lower_bound=0.0)
    d.train("float", "warmup_epochs", "Linear warmup from 0, in epochs (default: 1, or a tenth of "
            "--epochs when that is under 10).", lower_bound=0.0)
    d.train("float", "warmup_start_learning_rate", "Actual (not per-256) learning rate at the first warmup step.",
            lower_bound=0.0)
    d.train("enum", "lr_schedule", "Decay after warmup.", enum_values=list(choices.SCHEDULES))
    d.train("float", "lr_min_fraction", "The cosine schedule ends at the peak rate times this.",
            lower_bound=0.0, upper_bound=1.0)
    d.train("float", "lr_decay_rate", "Factor of the exponential and piecewise schedules.",
            lower_bound=0.0, upper_bound=1.0)
    d.train("float", "lr_epochs_per_decay", "Epochs between exponential decays.",
            lower_bound=1e-6)
    d.train("list", "lr_boundaries", "Epochs at which the piecewise schedule decays.")

    d.section("Linear evaluation (stage 2)")
    d.train("integer", "linear_epochs", "Epochs of the linear classifier on the frozen encoder (not for --method=ce).",
            lower_bound=0)
    d.train("enum", "linear_optimizer", "Optimizer of the linear classifier (no weight decay).",
            enum_values=list(choices.OPTIMIZERS))
    d.train("integer", "linear_batch_size", "Batch size of the linear classifier.", lower_bound=1)
    d.train("float", "linear_learning_rate", "Linear classifier learning rate per 256 images.", lower_bound=1e-12)
    d.train("float", "linear_momentum", "Momentum of the linear classifier's optimizer.", lower_bound=0.0,
            upper_bound=0.999999)
    d.train("float", "linear_weight_decay", "Weight decay of the linear classifier.", lower_bound=0.0)
    d.train("float", "linear_warmup_epochs", "Linear warmup of the classifier's learning rate, in epochs.",
            lower_bound=0.0)
    d.train("enum", "linear_lr_schedule", "The classifier's decay after warmup.", enum_values=list(choices.SCHEDULES))
    d.train("float", "linear_lr_decay_rate", "Factor of the classifier's exponential and piecewise schedules.",
            lower_bound=0.0, upper_bound=1.0)
    d.train("float", "linear_lr_epochs_per_decay", "Epochs between the classifier's exponential decays.",
            lower_bound=1e-6)
    d.train("list", "linear_lr_boundaries", "Epochs at which the classifier's piecewise schedule decays.")
    d.train("float", "linear_label_smoothing", "Label smoothing of the classifier's cross-entropy.",
            lower_bound=0.0, upper_bound=0.999)
    d.train("enum", "linear_augmentation", "Augmentation of the classifier's training images.",
            enum_values=list(choices.AUGMENTATIONS))
    d.train("boolean", "linear_normalize_input", "The classifier sees the L2-normalized embedding (the official "
            "ImageNet SupCon runs' normalize_embedding).")

    d.section("Run, distribution and fault tolerance")
    d.train("string", "model_dir", "Run directory: checkpoints, summaries, run_config.json, models, results.")
    d.train("boolean", "overwrite", "Delete a run with different settings found in --model_dir instead of refusing it.")
    d.train("enum", "strategy", "auto: mirrored over all GPUs, else one device; multi_worker reads TF_CONFIG.",
            enum_values=list(choices.STRATEGIES))
    d.train("string", "tpu", "TPU for --strategy=tpu: grpc://HOST:PORT, a name, or `local`.")
    d.train("enum", "precision", "Compute dtype policy (float16 uses dynamic loss scaling; the loss stays float32).",
            enum_values=list(choices.PRECISIONS))
    d.train("integer", "seed", "Seed of the weights, the data order and the augmentations.")
    d.train("boolean", "deterministic", "Deterministic TF ops, so the same seed gives the same loss curve (a bit slower).")
    d.train("integer", "steps_per_execution", "Training steps per tf.function call.",
            lower_bound=1)
    d.train("enum", "jit_compile", "XLA for the training step. auto: on for a single GPU or TPU; off on CPU (the "
            "ResNet-18 step at 64x2 views on 2 CPU cores: 46.8 views/s with XLA, 62.7 without) and under "
            "multi-replica tf.distribute (as Keras's own auto).", enum_values=list(choices.JIT_COMPILE))
    d.train("integer", "checkpoint_steps", "Checkpoint every this many steps (and at every epoch end).", lower_bound=1)
    d.train("integer", "keep_checkpoints", "Checkpoints kept (>= 2 keeps a fallback).",
            lower_bound=1)
    d.train("integer", "verbose", "Keras progress output: 0 silent, 1 progress bar, 2 one line "
            "per epoch.", lower_bound=0, upper_bound=2)
    d.define("boolean", "print_config", False, "Print the resolved settings (flagfiles and defaults "
             "applied, validated) as one JSON object, as run_config.json holds them, and exit without "
             "touching data or --model_dir.")

    flags.register_validator(
        "encoder", lambda v: v == "resnet" or (v.startswith("keras:") and len(v) > len("keras:")),
        flag_values=flag_values, message="--encoder must be resnet or keras:NAME (a keras.applications architecture, e.g. keras:EfficientNetB0).")
    flags.register_validator(
        "head_dims", lambda v: len(v) >= 1 and _int_list("head_dims", v),
        flag_values=flag_values, message="--head_dims must be a comma-separated list of positive integers, e.g. 512,128.")
    flags.register_validator(
        "linear_lr_boundaries", lambda v: _int_list("lr_boundaries", v),
        flag_values=flag_values, message="--linear_lr_boundaries must be a comma-separated list of positive epochs, e.g. 60,75,90.")
    flags.register_validator(
        "lr_boundaries", lambda v: _int_list("lr_boundaries", v),
        flag_values=flag_values, message="--lr_boundaries must be a comma-separated list of positive epochs, e.g. 30,60,80.")
    flags.register_multi_flags_validator(
        ["warmup_epochs", "epochs"], lambda f: f["warmup_epochs"] is None or f["warmup_epochs"] < f["epochs"],
        flag_values=flag_values, message="--warmup_epochs must be smaller than --epochs.")
    flags.register_multi_flags_validator(
        ["method", "mixup", "cutmix"],
        lambda f: f["method"] in ("genscl", "ce") or (f["mixup"] == 0 and f["cutmix"] == 0),
        flag_values=flag_values, message="--mixup/--cutmix make label distributions: use them with --method=genscl or ce.")
    flags.register_multi_flags_validator(
        ["method", "teacher"], lambda f: f["teacher"] is None or f["method"] == "genscl",
        flag_values=flag_values, message="--teacher (knowledge distillation) is only used by --method=genscl.")
    flags.register_multi_flags_validator(
        ["lr_schedule", "lr_boundaries", "warmup_epochs"],
        lambda f: f["lr_schedule"] != "piecewise" or (
            bool(f["lr_boundaries"]) and all(float(b) > (f["warmup_epochs"] or 0) for b in f["lr_boundaries"])),
        flag_values=flag_values, message="--lr_schedule=piecewise needs --lr_boundaries (epochs after --warmup_epochs).")
    flags.register_multi_flags_validator(
        ["positives_cap", "views"], lambda f: f["positives_cap"] is None or f["positives_cap"] % f["views"] == 0,
        flag_values=flag_values, message="--positives_cap must be a multiple of --views (whole samples are kept, "
        "each with all its views, as the official code counts them).")
    flags.register_multi_flags_validator(
        ["queue_size", "method"], lambda f: f["queue_size"] == 0 or f["method"] != "ce",
        flag_values=flag_values, message="--queue_size is for the contrastive methods (supcon, simclr, genscl), not ce.")
    flags.register_multi_flags_validator(
        ["augment_on", "augmentation", "mixup", "cutmix", "teacher"], _check_augment_on,
        flag_values=flag_values)
    flags.register_multi_flags_validator(
        ["strategy", "tpu"], lambda f: f["tpu"] is None or f["strategy"] == "tpu",
        flag_values=flag_values, message="--tpu is only used with --strategy=tpu.")

    return d.sections


def one_line_parser(program, flag_values=FLAGS):
    """A flags parser for `absl.app.run` that answers a bad flag with one line and exit code 1.

    absl's own parser prints `FATAL Flags parsing error: ...` and a usage hint on two lines.

    Args:
        program: str, the name that starts the line ("train.py").
        flag_values: the `FlagValues` to parse into. Defaults to the global `FLAGS`.

    Returns:
        A function `argv -> remaining argv`.
    """

    def parse(argv):
        try:
            return flag_values(argv)
        except flags.Error as error:
            # absl prefixes flagfile errors with "ERROR:: " and puts each failed check on a line.
            sys.exit(f"{program}: {console.one_line(str(error).removeprefix('ERROR:: '))}")

    return parse


def verbosity_given(flag_values=FLAGS):
    """Whether `--verbosity` is on the command line (tracebacks and TensorFlow's logs shown)."""
    return flag_values["verbosity"].present


def run_program(program, main, flag_values=FLAGS):
    """`absl.app.run(main)` with the terminal of supcon's entry points.

    A bad flag is one line (`one_line_parser`); an error from `main` is one line
    (`console.run_reporting_errors`); TensorFlow's and the libraries' INFO logs are off. With
    `--verbosity` all of them are shown, tracebacks included.

    Args:
        program: str, the name that starts each error line ("train.py").
        main: function `argv -> None`.
        flag_values: the `FlagValues` to parse into. Defaults to the global `FLAGS`.
    """

    def run(argv):
        verbose = verbosity_given(flag_values)
        if not verbose:
            logging.set_verbosity(logging.WARNING)
        console.run_reporting_errors(program, lambda: main(argv), show_tracebacks=verbose)

    app.run(run, flags_parser=one_line_parser(program, flag_values))


def train_config(flag_values=FLAGS):
    """The parsed training flags as a `TrainConfig` (lists and enums converted to their types).

    Args:
        flag_values: parsed `absl.flags.FlagValues` holding `define_train_flags()`'s flags.
            Defaults to the global `FLAGS`.

    Returns:
        `supcon.training.TrainConfig`.
    """
    values = {name: flag_values[name].value for name in _TRAIN_DEFAULTS}
    values["depth"] = int(values["depth"])
    values["head_dims"] = tuple(int(v) for v in values["head_dims"])
    values["lr_boundaries"] = tuple(float(v) for v in values["lr_boundaries"])
    values["linear_lr_boundaries"] = tuple(float(v) for v in values["linear_lr_boundaries"])
    return TrainConfig(**values)


def define_eval_flags(flag_values=FLAGS):
    """Defines every `eval.py` flag and its validators.

    What the flags alone decide is refused while they parse, before TensorFlow loads: severities
    outside 1..5, unknown or repeated corruption names, out-of-range numbers, `--model_dir` and
    `--compare` together or neither, `--compare` without `--output_dir`. What needs the run
    directory is checked next by `supcon.evaluation.inputs`, still before any work.

    Args:
        flag_values: `absl.flags.FlagValues` to define into. Defaults to the global `FLAGS`.

    Returns:
        list of `(section title, [flag names])`, in definition order.
    """
    # Imported here: `train.py` does not need the evaluation package (both modules are TensorFlow-free).
    from supcon.evaluation import corruption_params  # noqa: PLC0415  (NumPy only)
    from supcon.evaluation.config import EvalConfig  # noqa: PLC0415

    all_corruptions = corruption_params.ALL_CORRUPTIONS
    eval_defaults = {field.name: field.default for field in dataclasses.fields(EvalConfig)}
    d = _Definer(flag_values)

    def define(kind, name, help_text, **kwargs):
        """Defines `--name` with `EvalConfig`'s default for it (each default is written once)."""
        default = eval_defaults[name]
        if isinstance(default, tuple):
            default = [str(v) for v in default]
        d.define(kind, name, default, help_text, **kwargs)

    d.section("Run to evaluate")
    define("string", "model_dir", "Run directory written by train.py to evaluate.")
    d.define("list", "compare", None,
             "Compare already-evaluated runs: `--compare DIR_A DIR_B ...` (or DIR_A,DIR_B; at least 2, "
             "distinct) writes a side-by-side table and overlaid plots to --output_dir.")
    define("string", "output_dir",
           "Report folder (default MODEL_DIR/eval; required with --compare, and then not a report folder).")
    define("boolean", "overwrite",
           "Replace a report (or comparison) of other settings already in --output_dir. Without it eval.py "
           "refuses with one line before any work and leaves that report byte-for-byte as it was; a re-run "
           "with the same settings replaces its own report. The new files replace the old ones only once "
           "all are written.")
    define("string", "data_dir",
           "Data directory (default: the run's). Prepared TFDS cifar10_corrupted / "
           "imagenet2012_corrupted sets here are used instead of generated corruptions.")
    define("string", "dataset", "Evaluate on this data set instead of the run's (same class count).")
    define("integer", "seed", "Seed of the generated corruptions and of a classifier trained here (its head "
           "and data order).", lower_bound=0)
    define("integer", "batch_size", "Evaluation batch size.", lower_bound=1)
    define("integer", "max_test_examples",
           "Only the first N test examples (quick looks); N above the test split's size evaluates the "
           "whole split, and eval.py says so.", lower_bound=1)

    d.section("Corruption benchmark and calibration")
    define("list", "corruptions",
           "Corruptions to sweep (empty: none): some of " + ", ".join(all_corruptions) + ".")
    define("list", "severities", "Severities to sweep (integers 1..5).")
    define("enum", "corruption_source",
           "auto: prepared TFDS sets when all present, else generated; tfds: require them; "
           "generate: always generate.", enum_values=list(choices.CORRUPTION_SOURCES))
    define("boolean", "progress", "Progress bar over the corruption sweep.")

    d.section("kNN on the embeddings")
    define("integer", "knn_k",
           "kNN neighbours (Wu et al. 2018); 0 skips kNN; more than the training examples uses them "
           "all (the report gives the k used).", lower_bound=0)
    define("float", "knn_temperature", "kNN vote temperature tau.", lower_bound=1e-6)

    d.section("Classifier stage (linear classifier on the frozen encoder)")
    define("boolean", "retrain_classifier",
           "Train a new linear classifier even if the run has one (not for cross-entropy runs). A run without "
           "classifier.keras gets one trained in any case. Training uses the run's stage-2 settings (its "
           "--linear_* flags, in run_config.json; a run trained with --linear_epochs=0 gets the default "
           "linear_epochs), each replaced by the --classifier_* flag below when given.")
    define("enum", "classifier_optimizer", "Optimizer of the classifier (default: the run's linear_optimizer).",
           enum_values=list(choices.OPTIMIZERS))
    define("float", "classifier_learning_rate",
           "Learning rate per 256 examples (default: the run's linear_learning_rate).", lower_bound=1e-12)
    define("integer", "classifier_epochs", "Classifier epochs (default: the run's linear_epochs).", lower_bound=1)
    define("integer", "classifier_batch_size", "Classifier batch size (default: the run's linear_batch_size).",
           lower_bound=1)
    define("enum", "classifier_augmentation",
           "Augmentation of the classifier's training images (default: the run's linear_augmentation).",
           enum_values=list(choices.AUGMENTATIONS))

    def check_corruptions(names):
        unknown = [n for n in names if n not in all_corruptions]
        if unknown:
            raise flags.ValidationError(f"unknown corruption {unknown[0]!r}; expected some of: "
                                        f"{', '.join(all_corruptions)} (or nothing, --corruptions=, for no sweep).")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise flags.ValidationError(f"names {', '.join(repeated)} twice; expected each corruption once.")
        return True

    def check_severities(values):
        bad = [v for v in values if v.strip() not in ("1", "2", "3", "4", "5")]
        if bad:
            raise flags.ValidationError(f"severities are integers 1..5. Received: {bad[0]!r}")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise flags.ValidationError(f"names {', '.join(repeated)} twice; expected each severity once.")
        return True

    def check_compare(dirs):
        if dirs is not None and (not dirs or any(not d.strip() for d in dirs)):
            raise flags.ValidationError("expected run directories: --compare DIR_A DIR_B ...")
        return True

    flags.register_validator("corruptions", check_corruptions, flag_values=flag_values)
    flags.register_validator("severities", check_severities, flag_values=flag_values)
    flags.register_validator("compare", check_compare, flag_values=flag_values)
    flags.register_multi_flags_validator(
        ["model_dir", "compare"], lambda f: bool(f["model_dir"]) != (f["compare"] is not None),
        flag_values=flag_values,
        message="expected --model_dir=RUN_DIR (evaluate a run) or --compare DIR_A DIR_B ... (compare evaluated "
                "runs), one of the two.")
    flags.register_multi_flags_validator(
        ["compare", "output_dir"], lambda f: f["compare"] is None or bool(f["output_dir"]),
        flag_values=flag_values, message="--compare needs --output_dir=DIR for the side-by-side report.")
    return d.sections


def eval_config(flag_values=FLAGS):
    """The parsed evaluation flags as a `supcon.evaluation.EvalConfig` (lists converted to tuples).

    Args:
        flag_values: parsed `absl.flags.FlagValues` holding `define_eval_flags()`'s flags.
            Defaults to the global `FLAGS`.

    Returns:
        `supcon.evaluation.EvalConfig` (not yet checked against the run: see
        `supcon.evaluation.inputs.check_evaluation`).
    """
    from supcon.evaluation.config import EvalConfig  # noqa: PLC0415  (TensorFlow-free)

    values = {field.name: flag_values[field.name].value for field in dataclasses.fields(EvalConfig)}
    values["corruptions"] = tuple(values["corruptions"])
    values["severities"] = tuple(int(s) for s in values["severities"])
    return EvalConfig(**values)


def _markdown_table(title, sections, flag_values):
    lines = [f"## {title}", ""]
    for section, names in sections:
        lines += [f"### {section}", "", "| Flag | Type | Default | Help |", "|---|---|---|---|"]
        for name in names:
            flag = flag_values[name]
            kind = flag.flag_type()
            help_text = flag.help
            if getattr(flag.parser, "enum_values", None):
                kind = "enum: " + " \\| ".join(f"`{v}`" for v in flag.parser.enum_values)
                help_text = help_text.split(">: ", 1)[-1]  # absl prefixes `<a|b|c>: `.
            default = "None" if flag.default is None else (flag.default_as_str or "''").strip("'")
            help_text = help_text.replace("|", "\\|")
            lines.append(f"| `--{name}` | {kind} | `{default}` | {help_text} |")
        lines.append("")
    return lines


def markdown():
    """`flags.md`: every flag of both scripts with its type, default and help, by section.

    Returns:
        str, Markdown.
    """
    train_values, eval_values = flags.FlagValues(), flags.FlagValues()
    lines = [
        "# Flags",
        "",
        "Generated by `make flags` (`python -m supcon.flags --markdown > flags.md`) from",
        "`supcon/flags.py`; `tests/test_flags.py` fails when this file is stale. Pass recipes with",
        "`--flagfile=configs/NAME.flags`.",
        "",
    ]
    lines += _markdown_table("`train.py` (`supcon-train`)", define_train_flags(train_values),
                             train_values)
    lines += _markdown_table("`eval.py` (`supcon-eval`)", define_eval_flags(eval_values),
                             eval_values)
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m supcon.flags --markdown > flags.md")
    sys.stdout.write(markdown())
