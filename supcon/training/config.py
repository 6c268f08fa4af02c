"""`TrainConfig`: every setting of a training run, with the defaults of the main job.

The field names are the `train.py` flag names and the keys of `run_config.json`; `supcon/flags.py`
takes its defaults from here, so each default is written once. The defaults are the main job:
SupCon on the embedded `digits` data with a quarter-width ResNet-18 (CIFAR stem), sized to finish
in a few minutes on 2 CPU cores.
"""

import dataclasses

from supcon.choices import METHODS  # noqa: F401  (re-exported)


DEFAULT_WARMUP_EPOCHS = 1.0
WARMUP_FRACTION_OF_SHORT_RUNS = 0.1


def default_warmup_epochs(epochs):
    """The warmup when none is given: 1 epoch, or a tenth of runs shorter than 10 epochs.

    Args:
        epochs: int, the run's pre-training epochs.

    Returns:
        float, always smaller than `epochs` when `epochs` > 0.

    Example:
        >>> default_warmup_epochs(30), default_warmup_epochs(4)
        (1.0, 0.4)
    """
    return min(DEFAULT_WARMUP_EPOCHS, WARMUP_FRACTION_OF_SHORT_RUNS * epochs)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of one run (see `flags.md` for each field's meaning)."""

    # Data.
    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int = 0
    views: int = 2
    # The digits main job uses SimAugment with crops of at least half the image: the paper's
    # 0.08 (`supcon.data.augment.PAPER_CROP_SCALE`) keeps too little of an 8x8 digit (measured when
    # digits were 32x32: 60.8% test accuracy after 5 epochs, 99.2% with 0.5 after 30 epochs).
    # The configs/ recipes set the paper's policies and 0.08.
    augmentation: str = "simaugment"
    crop_min_scale: float = 0.5
    # SimCLR's colour strength s: jitter (0.8s, 0.8s, 0.8s, 0.2s); 0.5 is the SupCon CIFAR code's
    # ColorJitter(0.4, 0.4, 0.4, 0.1), 1.0 the ImageNet runs'.
    color_jitter_strength: float = 0.5
    blur: str = "auto"  # auto: blur (p 0.5) images of 128 px or more; on; off.
    randaugment_layers: int = 2
    randaugment_magnitude: float = 9.0
    mixup: float = 0.0
    cutmix: float = 0.0
    # Where the per-pixel stage (flip, colour, grayscale, blur) runs: "host" (tf.data) or "device"
    # (batched inside the training step, on the accelerator); decoding and cropping stay on the host.
    augment_on: str = "host"
    # Method and encoder.
    method: str = "supcon"
    encoder: str = "resnet"  # Or "keras:NAME", any keras.applications architecture.
    depth: int = 18
    resnet_version: str = "v1"
    width_multiplier: float = 0.25
    stem: str = "cifar"
    synchronized_bn: bool = False
    head_dims: tuple = (128, 64)
    head_batch_norm: bool = False
    head_normalize_input: bool = False  # L2-normalize the encoder output before the head.
    head_last_bias: bool = True  # A bias in the head's last layer.
    online_classifier: bool = True
    # Loss. Khosla et al. §4: τ = 0.1 (supcon.losses.PAPER_TEMPERATURE).
    temperature: float = 0.1
    base_temperature: float | None = None
    contrast_mode: str = "all"
    summation: str = "outside"
    denominator: str = "all"
    positives_cap: int | None = None
    loss_block_size: int | None = None
    # A labelled memory queue of K keys from a momentum key encoder (0: none; MoCo, He et al. 2020).
    queue_size: int = 0
    key_encoder_momentum: float = 0.999
    teacher: str | None = None
    # GenSCL distillation as kiimmm/GenSCL: loss(labels) + kd_alpha * loss(teacher's softmax(logits / T)).
    kd_alpha: float = 1.0
    kd_temperature: float = 1.0
    label_smoothing: float = 0.0
    # Optimization.
    batch_size: int = 32
    # 40 epochs for the main job at 16x16: 98.61 / 98.61 / 99.44% at seeds 0-2 (30 epochs: 97.78-98.61%).
    epochs: int = 40
    steps_per_epoch: int = 0
    optimizer: str = "sgd"
    learning_rate: float = 1.0
    momentum: float = 0.9
    lars_eta: float = 0.001
    weight_decay: float = 1e-4
    # None: `default_warmup_epochs(epochs)`, so that no default makes a short run invalid.
    warmup_epochs: float | None = None
    warmup_start_learning_rate: float = 0.0  # The actual (not per-256) rate warmup starts from.
    lr_min_fraction: float = 0.0  # Cosine decays to learning_rate * lr_min_fraction.
    lr_schedule: str = "cosine"
    lr_decay_rate: float = 0.1
    lr_epochs_per_decay: float = 30.0
    lr_boundaries: tuple = ()
    # Linear evaluation (stage 2): the same settings as pre-training's, prefixed `linear_`. The
    # digits main job's own choice (Adam, cosine, no warmup); the recipes set their sources'.
    linear_epochs: int = 8
    linear_optimizer: str = "adam"
    linear_batch_size: int = 128
    linear_learning_rate: float = 0.2
    linear_momentum: float = 0.9
    linear_weight_decay: float = 0.0
    linear_warmup_epochs: float = 0.0
    linear_lr_schedule: str = "cosine"
    linear_lr_decay_rate: float = 0.1
    linear_lr_epochs_per_decay: float = 30.0
    linear_lr_boundaries: tuple = ()
    linear_label_smoothing: float = 0.0
    linear_augmentation: str = "none"
    linear_normalize_input: bool = False
    # Run, distribution and fault tolerance.
    model_dir: str = "runs/digits_supcon"
    overwrite: bool = False
    strategy: str = "auto"
    tpu: str | None = None
    precision: str = "float32"
    seed: int = 0
    deterministic: bool = True
    steps_per_execution: int = 1
    jit_compile: str = "auto"  # XLA for the training step: auto (single GPU/TPU only), true, false.
    checkpoint_steps: int = 100
    keep_checkpoints: int = 3
    verbose: int = 1

    def __post_init__(self):
        if self.warmup_epochs is None:
            object.__setattr__(self, "warmup_epochs", default_warmup_epochs(self.epochs))
        elif not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"`warmup_epochs` must be in [0, epochs={self.epochs}). "
                f"Received: warmup_epochs={self.warmup_epochs}"
            )

    def contrast_options(self):
        """The contrastive loss's settings as a validated `supcon.losses.ContrastOptions`.

        SupCon takes every loss setting; SimCLR and GenSCL (and "ce", which has no contrastive
        loss) take temperature, base_temperature, contrast_mode and loss_block_size, the others
        keeping their defaults, as the loss is built for them.

        Returns:
            A `ContrastOptions` (raises `ValueError` naming the setting if one is invalid).

        Example:
            >>> TrainConfig(temperature=0.2, loss_block_size=512).contrast_options().block_size
            512
        """
        from supcon.losses.options import ContrastOptions  # Lazy: importing the losses imports TensorFlow.

        settings = dict(
            temperature=self.temperature,
            base_temperature=self.base_temperature,
            contrast_mode=self.contrast_mode,
            block_size=self.loss_block_size,
        )
        if self.method == "supcon":
            settings.update(summation=self.summation, denominator=self.denominator, positives_cap=self.positives_cap)
        return ContrastOptions(**settings)

    def to_json(self):
        """The settings as a JSON-compatible dict (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }
