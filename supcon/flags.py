"""Every `train.py` flag, its validation, and `flags.md` (`python -m supcon.flags --markdown`).

This is the only library module that touches absl `FLAGS` (besides the entry points `train.py`
and `eval.py`): it turns parsed flags into a `supcon.training.TrainConfig`, whose field names are
the flag names. Bad values fail while the flags are parsed, before any work starts, with the flag's
name and the allowed values.
"""

import dataclasses
import sys

from absl import flags

from supcon.data.augment import AUGMENTATIONS
from supcon.training import lars, optimizers, precision, schedules, strategy
from supcon.training.config import METHODS, TrainConfig

FLAGS = flags.FLAGS

# (section title, [flag names]) in definition order; `markdown()` renders them.
_SECTIONS = []


def _section(title):
    _SECTIONS.append((title, []))


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


def _define(kind, name, help_text, **kwargs):
    """Defines `--name` with `TrainConfig`'s default for it."""
    default = _DEFAULTS[name]
    if isinstance(default, tuple):
        default = [str(v) for v in default]
    elif kind == "enum":
        default = str(default)
    if kind == "enum":
        flags.DEFINE_enum(name, default, kwargs.pop("enum_values"), help_text, **kwargs)
    else:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, **kwargs)
    _SECTIONS[-1][1].append(name)


# Paper constants for the defaults' comments live in the modules that use them
# (supcon.losses.PAPER_TEMPERATURE, supcon.training.lars.DEFAULT_ETA, ...).

_section("Data")
_define("string", "dataset", "Dataset: `digits` (embedded, offline), any TFDS name (e.g. `cifar10`), or `folder:PATH`.")
_define("string", "data_dir", "Where TFDS data or downloads live (TFDS default if unset).")
_define("integer", "image_size", "Square training/eval image size in pixels; 0 keeps the dataset's own size.", lower_bound=0)
_define("integer", "views", "Augmented views per image in the contrastive batch.", lower_bound=1)
_define("enum", "augmentation", "Augmentation policy of the training views (Khosla et al. §4, App. B).",
        enum_values=list(AUGMENTATIONS))
_define("float", "crop_min_scale",
        "Smallest area fraction of the random resized crop (paper: 0.08, SimCLR's).",
        lower_bound=1e-3, upper_bound=1.0)
_define("float", "mixup", "MixUp Beta(α, α) parameter; 0 disables (genscl/ce only).",
        lower_bound=0.0)
_define("float", "cutmix", "CutMix Beta(α, α) parameter; 0 disables (genscl/ce only).",
        lower_bound=0.0)

_section("Method and encoder")
_define("enum", "method", "supcon: SupCon loss (Khosla et al. Eq. 2); simclr: NT-Xent; genscl: generalized "
        "SupCon on label distributions (Kim et al. 2022); ce: cross-entropy baseline.",
        enum_values=list(METHODS))
_define("enum", "depth", "ResNet depth.", enum_values=["18", "34", "50", "101", "152", "200"])
_define("enum", "resnet_version", "v1 (post-activation, the paper's) or v2 (pre-activation).",
        enum_values=["v1", "v2"])
_define("float", "width_multiplier", "Scales every ResNet width (1 = the paper's).",
        lower_bound=1e-3)
_define("enum", "stem", "imagenet: 7x7/2 conv + max-pool; cifar: 3x3/1 conv, no pool.",
        enum_values=["cifar", "imagenet"])
_define("boolean", "synchronized_bn", "Cross-replica batch norm (the paper on TPUs).")
_define("list", "head_dims", "Projection head layer sizes, the last one the embedding fed to the loss "
        "(paper: 2048,128 for ResNet-50).")
_define("boolean", "head_batch_norm", "Batch norm in the projection head's hidden layers.")
_define("boolean", "online_classifier", "Train a linear head on stop_gradient(embedding) during pre-training (reports `accuracy`; "
        "never changes the encoder).")

_section("Loss")
_define("float", "temperature", "Contrastive temperature τ (paper: 0.1 SupCon, 0.5 SimCLR).",
        lower_bound=1e-6)
_define("float", "base_temperature", "Loss scale τ/τ_base of the reference code; unset means τ_base = τ (scale 1).",
        lower_bound=1e-6)
_define("enum", "contrast_mode", "all: every view is an anchor; one: only the first view.",
        enum_values=["all", "one"])
_define("enum", "summation", "outside: L^sup_out (Eq. 2, the paper's best); inside: L^sup_in (Eq. 3).",
        enum_values=["outside", "inside"])
_define("enum", "denominator", "Terms in the softmax denominator: all others, one positive, or only negatives.",
        enum_values=["all", "one_positive", "only_negatives"])
_define("integer", "positives_cap", "Use at most this many positives per anchor.",
        lower_bound=1)
_define("integer", "loss_block_size", "Compute the loss in blocks of this many anchors (memory for large batches).",
        lower_bound=1)
_define("string", "teacher", "GenSCL knowledge distillation: a SavedModel (from train.py's saved_model/) whose "
        "`probabilities` are mixed into the label distributions.")
_define("float", "teacher_weight", "Weight of the teacher's distribution in the GenSCL target (1 - weight on the labels).",
        lower_bound=0.0, upper_bound=1.0)
_define("float", "label_smoothing", "Label smoothing ε of the cross-entropy baseline.",
        lower_bound=0.0, upper_bound=0.999)

_section("Optimization")
_define("integer", "batch_size", "Global batch size (split across replicas).", lower_bound=1)
_define("integer", "epochs", "Pre-training epochs.", lower_bound=1)
_define("integer", "steps_per_epoch",
        "Steps per epoch; 0 means one pass over the training split (its size // batch_size).",
        lower_bound=0)
_define("enum", "optimizer", "Optimizer; weight decay spares BN and biases for all.",
        enum_values=list(optimizers.OPTIMIZERS))
_define("float", "learning_rate", "Peak learning rate per 256 images; the run uses learning_rate * batch_size / 256.",
        lower_bound=1e-12)
_define("float", "momentum", "Momentum of lars/sgd/nesterov/rmsprop.", lower_bound=0.0,
        upper_bound=0.999999)
_define("float", "lars_eta", "LARS trust coefficient η.", lower_bound=1e-12)
_define("float", "weight_decay", "Weight decay λ (coupled L2 for lars/sgd/nesterov/rmsprop/adam, decoupled for adamw/lamb).",
        lower_bound=0.0)
_define("float", "warmup_epochs", "Linear warmup from 0, in epochs.", lower_bound=0.0)
_define("enum", "lr_schedule", "Decay after warmup.", enum_values=list(schedules.SCHEDULES))
_define("float", "lr_decay_rate", "Factor of the exponential and piecewise schedules.",
        lower_bound=0.0, upper_bound=1.0)
_define("float", "lr_epochs_per_decay", "Epochs between exponential decays.",
        lower_bound=1e-6)
_define("list", "lr_boundaries", "Epochs at which the piecewise schedule decays.")

_section("Linear evaluation (stage 2)")
_define("integer", "linear_epochs", "Epochs of the linear classifier on the frozen encoder (not for --method=ce).",
        lower_bound=0)
_define("enum", "linear_optimizer", "Optimizer of the linear classifier (no weight decay).",
        enum_values=list(optimizers.OPTIMIZERS))
_define("integer", "linear_batch_size", "Batch size of the linear classifier.", lower_bound=1)
_define("float", "linear_learning_rate", "Linear classifier learning rate per 256 images (cosine decay to 0).", lower_bound=1e-12)

_section("Run, distribution and fault tolerance")
_define("string", "model_dir", "Run directory: checkpoints, summaries, run_config.json, models, results.")
_define("boolean", "overwrite", "Delete a run with different settings found in --model_dir instead of refusing it.")
_define("enum", "strategy", "auto: mirrored over all GPUs, else one device; multi_worker reads TF_CONFIG.",
        enum_values=list(strategy.STRATEGIES))
_define("string", "tpu", "TPU for --strategy=tpu: grpc://HOST:PORT, a name, or `local`.")
_define("enum", "precision", "Compute dtype policy (float16 uses dynamic loss scaling; the loss stays float32).",
        enum_values=list(precision.PRECISIONS))
_define("integer", "seed", "Seed of the weights, the data order and the augmentations.")
_define("boolean", "deterministic", "Deterministic TF ops, so the same seed gives the same loss curve (a bit slower).")
_define("integer", "steps_per_execution", "Training steps per tf.function call.",
        lower_bound=1)
_define("integer", "checkpoint_steps", "Checkpoint every this many steps (and at every epoch end).", lower_bound=1)
_define("integer", "keep_checkpoints", "Checkpoints kept (>= 2 keeps a fallback).",
        lower_bound=1)
_define("integer", "verbose", "Keras progress output: 0 silent, 1 progress bar, 2 one line "
        "per epoch.", lower_bound=0, upper_bound=2)


def _int_list(name, values, positive=True):
    try:
        parsed = [float(v) if name == "lr_boundaries" else int(v) for v in values]
    except ValueError:
        return False
    return all(v > 0 for v in parsed) if positive else True


flags.register_validator(
    "head_dims", lambda v: len(v) >= 1 and _int_list("head_dims", v),
    message="--head_dims must be a comma-separated list of positive integers, e.g. 512,128.")
flags.register_validator(
    "lr_boundaries", lambda v: _int_list("lr_boundaries", v),
    message="--lr_boundaries must be a comma-separated list of positive epochs, e.g. 30,60,80.")
flags.register_multi_flags_validator(
    ["warmup_epochs", "epochs"], lambda f: f["warmup_epochs"] < f["epochs"],
    message="--warmup_epochs must be smaller than --epochs.")
flags.register_multi_flags_validator(
    ["method", "mixup", "cutmix"],
    lambda f: f["method"] in ("genscl", "ce") or (f["mixup"] == 0 and f["cutmix"] == 0),
    message="--mixup/--cutmix make label distributions: use them with --method=genscl or ce.")
flags.register_multi_flags_validator(
    ["method", "teacher"], lambda f: f["teacher"] is None or f["method"] == "genscl",
    message="--teacher (knowledge distillation) is only used by --method=genscl.")
flags.register_multi_flags_validator(
    ["lr_schedule", "lr_boundaries", "warmup_epochs"],
    lambda f: f["lr_schedule"] != "piecewise" or (
        bool(f["lr_boundaries"]) and all(float(b) > f["warmup_epochs"] for b in f["lr_boundaries"])),
    message="--lr_schedule=piecewise needs --lr_boundaries (epochs after --warmup_epochs).")
flags.register_multi_flags_validator(
    ["strategy", "tpu"], lambda f: f["tpu"] is None or f["strategy"] == "tpu",
    message="--tpu is only used with --strategy=tpu.")


def config_from_flags(flag_values=FLAGS):
    """The parsed flags as a `TrainConfig` (lists and enums converted to their types).

    Args:
        flag_values: parsed `absl.flags.FlagValues`. Defaults to the global `FLAGS`.

    Returns:
        `supcon.training.TrainConfig`.
    """
    values = {name: flag_values[name].value for _, names in _SECTIONS for name in names}
    values["depth"] = int(values["depth"])
    values["head_dims"] = tuple(int(v) for v in values["head_dims"])
    values["lr_boundaries"] = tuple(float(v) for v in values["lr_boundaries"])
    return TrainConfig(**values)


def markdown():
    """`flags.md`: every flag with its type, default and help, grouped by section.

    Returns:
        str, Markdown.
    """
    lines = [
        "# `train.py` flags",
        "",
        "Generated by `make flags` (`python -m supcon.flags --markdown > flags.md`) from",
        "`supcon/flags.py`; `tests/test_flags.py` fails when this file is stale. Pass recipes with",
        "`--flagfile=configs/NAME.flags`.",
        "",
    ]
    for title, names in _SECTIONS:
        lines += [f"## {title}", "", "| Flag | Type | Default | Help |", "|---|---|---|---|"]
        for name in names:
            flag = FLAGS[name]
            kind = flag.flag_type()
            if getattr(flag.parser, "enum_values", None):
                kind = "enum: " + " \\| ".join(f"`{v}`" for v in flag.parser.enum_values)
            default = "None" if flag.default is None else (flag.default_as_str or "''").strip("'")
            help_text = flag.help.replace("|", "\\|")
            lines.append(f"| `--{name}` | {kind} | `{default}` | {help_text} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m supcon.flags --markdown > flags.md")
    sys.stdout.write(markdown())
