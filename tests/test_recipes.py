"""Every configs/ recipe against the official run it cites, field by field, with each fact's source.

The tables below are copied facts, not our code's values: each entry is `field: (value, source)`,
read from the official repositories (HobbitLong/SupContrast for the CIFAR runs, whose numbers the
paper reports; google-research/google-research `supcon/` for ImageNet; kiimmm/GenSCL). Learning
rates are per 256 images as our flags take them: an official rate used as is at batch B (the
PyTorch code) is `rate * 256 / B` here; the TF code already quotes per-256 base rates.

Each recipe must (1) resolve, as `train.py --flagfile=... --print_config` does, to these values and
(2) set each of these fields itself (in its file or in the recipe it includes), never through a
default of the digits main job.
"""

import os
import re
import subprocess
import sys

import pytest
from absl import flags

from supcon import flags as supcon_flags
from supcon import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SC = "HobbitLong/SupContrast main_supcon.py"
_LIN = "HobbitLong/SupContrast main_linear.py"
_CE = "HobbitLong/SupContrast main_ce.py"
_README = "HobbitLong/SupContrast README.md"
_GR = "google-research supcon/"
_GS = "kiimmm/GenSCL parser.py"

SUPCON_CIFAR10 = {
    "dataset": ("cifar10", f"{_SC}: --dataset default 'cifar10'"),
    "image_size": (32, f"{_SC}: --size default 32"),
    "method": ("supcon", f"{_SC}: --method default 'SupCon'"),
    "views": (2, "HobbitLong util.py TwoCropTransform"),
    "depth": (50, f"{_SC}: --model default 'resnet50'"),
    "stem": ("cifar", "HobbitLong networks/resnet_big.py: conv1 3x3 stride 1, no max-pool"),
    "width_multiplier": (1.0, "resnet_big.py: widths 64..512, expansion 4"),
    "head_dims": ((2048, 128), "resnet_big.py SupConResNet head='mlp': Linear(2048,2048), ReLU, Linear(2048,128)"),
    "head_batch_norm": (False, "resnet_big.py: the mlp head has no BatchNorm"),
    "head_normalize_input": (False, "resnet_big.py: head(feat) on the raw encoder output"),
    "head_last_bias": (True, "resnet_big.py: nn.Linear default bias=True"),
    "synchronized_bn": (False, f"{_README}: 'WARN: --syncBN has no effect' (DataParallel)"),
    "augmentation": ("simaugment", f"{_SC} set_loader: crop, flip, ColorJitter p 0.8, RandomGrayscale"),
    "crop_min_scale": (0.2, f"{_SC} set_loader: RandomResizedCrop(scale=(0.2, 1.))"),
    "color_jitter_strength": (0.5, f"{_SC} set_loader: ColorJitter(0.4, 0.4, 0.4, 0.1) = s 0.5"),
    "blur": ("off", f"{_SC} set_loader: no blur"),
    "temperature": (0.1, f"{_README}: --temp 0.1"),
    "base_temperature": (0.07, "HobbitLong losses.py: SupConLoss(base_temperature=0.07) default"),
    "contrast_mode": ("all", "losses.py: contrast_mode='all'"),
    "summation": ("outside", "losses.py: mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1)"),
    "batch_size": (1024, f"{_README}: --batch_size 1024"),
    "epochs": (1000, f"{_SC}: --epochs default 1000"),
    "optimizer": ("sgd", "HobbitLong util.py set_optimizer: optim.SGD"),
    "momentum": (0.9, f"{_SC}: --momentum default 0.9"),
    "learning_rate": (0.125, f"{_README}: --learning_rate 0.5 at batch 1024, not scaled (0.5 * 256 / 1024)"),
    "weight_decay": (1e-4, f"{_SC}: --weight_decay default 1e-4"),
    "lr_schedule": ("cosine", f"{_README}: --cosine"),
    "lr_min_fraction": (0.001, "util.py adjust_learning_rate: eta_min = lr * lr_decay_rate ** 3, rate 0.1"),
    "warmup_epochs": (10.0, f"{_SC}: if opt.batch_size > 256: opt.warm_epochs = 10"),
    "warmup_start_learning_rate": (0.01, f"{_SC}: opt.warmup_from = 0.01"),
    "linear_optimizer": ("sgd", "util.py set_optimizer: optim.SGD"),
    "linear_momentum": (0.9, f"{_LIN}: --momentum default 0.9"),
    "linear_batch_size": (512, f"{_README}: main_linear.py --batch_size 512"),
    "linear_learning_rate": (2.5, f"{_README}: main_linear.py --learning_rate 5 at batch 512 (5 * 256 / 512)"),
    "linear_epochs": (100, f"{_LIN}: --epochs default 100"),
    "linear_lr_schedule": ("piecewise", f"{_LIN}: --lr_decay_epochs '60,75,90' (no --cosine)"),
    "linear_lr_boundaries": ((60.0, 75.0, 90.0), f"{_LIN}: --lr_decay_epochs default '60,75,90'"),
    "linear_lr_decay_rate": (0.2, f"{_LIN}: --lr_decay_rate default 0.2"),
    "linear_weight_decay": (0.0, f"{_LIN}: --weight_decay default 0"),
    "linear_warmup_epochs": (0.0, f"{_LIN}: no automatic warm-up (only a manual --warm)"),
    "linear_label_smoothing": (0.0, f"{_LIN}: torch.nn.CrossEntropyLoss()"),
    "linear_augmentation": ("crop_flip", "main_ce.py set_loader (used by main_linear): RandomResizedCrop(0.2, 1) + flip"),
}

CE_CIFAR10 = {
    "dataset": ("cifar10", f"{_CE}: --dataset default 'cifar10'"),
    "image_size": (32, f"{_CE}: CIFAR images"),
    "method": ("ce", f"{_CE}: torch.nn.CrossEntropyLoss()"),
    "views": (1, f"{_CE} set_loader: one transform per image"),
    "depth": (50, f"{_CE}: --model default 'resnet50'"),
    "stem": ("cifar", "resnet_big.py SupCEResNet: the CIFAR-stem ResNet"),
    "width_multiplier": (1.0, "resnet_big.py"),
    "augmentation": ("crop_flip", f"{_CE} set_loader: RandomResizedCrop + RandomHorizontalFlip only"),
    "crop_min_scale": (0.2, f"{_CE} set_loader: RandomResizedCrop(scale=(0.2, 1.))"),
    "label_smoothing": (0.0, f"{_CE}: torch.nn.CrossEntropyLoss()"),
    "batch_size": (1024, f"{_README}: main_ce.py --batch_size 1024"),
    "epochs": (500, f"{_CE}: --epochs default 500"),
    "optimizer": ("sgd", "util.py set_optimizer: optim.SGD"),
    "momentum": (0.9, f"{_CE}: --momentum default 0.9"),
    "learning_rate": (0.2, f"{_README}: main_ce.py --learning_rate 0.8 at batch 1024 (0.8 * 256 / 1024)"),
    "weight_decay": (1e-4, f"{_CE}: --weight_decay default 1e-4"),
    "lr_schedule": ("cosine", f"{_README}: --cosine"),
    "lr_min_fraction": (0.001, "util.py: eta_min = lr * 0.1 ** 3"),
    "warmup_epochs": (10.0, f"{_CE}: if opt.batch_size > 256: opt.warm_epochs = 10"),
    "warmup_start_learning_rate": (0.01, f"{_CE}: opt.warmup_from = 0.01"),
}

SUPCON_IMAGENET_R50 = {
    "dataset": ("imagenet2012", f"{_GR}inputs.py: tfds imagenet2012"),
    "image_size": (224, f"{_GR}configs.sh IMAGENET_FLAGS: --image_size=224"),
    "method": ("supcon", f"{_GR}configs.sh SUPCON_FLAGS"),
    "views": (2, f"{_GR}hparams.py: num_views 2"),
    "depth": (50, f"{_GR}configs.sh RESNET50x1_FLAGS: --resnet_depth=50"),
    "resnet_version": ("v1", f"{_GR}configs.sh: --resnet_architecture=RESNET_V1"),
    "stem": ("imagenet", f"{_GR}configs.sh IMAGENET_FLAGS (7x7/2 conv + max-pool)"),
    "width_multiplier": (1.0, f"{_GR}configs.sh RESNET50x1_FLAGS: --resnet_width=1"),
    "head_dims": ((128,), f"{_GR}configs.sh SUPCON_FLAGS: --projection_head_layers=128"),
    "head_batch_norm": (False, f"{_GR}configs.sh SUPCON_FLAGS: no projection batch norm"),
    "head_normalize_input": (True, f"{_GR}configs.sh SUPCON_FLAGS: --normalize_embedding=True"),
    "head_last_bias": (False, f"{_GR}projection_head.py: 'The final layer doesn't use a bias'"),
    "synchronized_bn": (True, f"{_GR}configs.sh: --use_global_batch_norm=True"),
    "augmentation": ("autoaugment", f"{_GR}scripts/supcon_imagenet_resnet50.sh: --augmentation_type=AUTOAUGMENT"),
    "crop_min_scale": (0.08, f"{_GR}hparams_flags: crop area range default ['0.08', '1.0']"),
    "blur": ("off", f"{_GR}launcher.py: deferred blur only for SIMCLR / STACKED_RANDAUGMENT"),
    "temperature": (0.1, f"{_GR}scripts/supcon_imagenet_resnet50.sh L33: --stage_1_temperature=0.1"),
    "base_temperature": (1.0, f"{_GR}configs.sh: --scale_by_temperature=True; losses.py: loss *= temperature"),
    "contrast_mode": ("all", f"{_GR}configs.sh: --stage_1_contrast_mode=ALL_VIEWS"),
    "summation": ("outside", f"{_GR}configs.sh: --stage_1_summation_location=OUTSIDE"),
    "denominator": ("all", f"{_GR}configs.sh: --stage_1_denominator_mode=ALL"),
    "batch_size": (6144, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --batch_size=6144"),
    "epochs": (350, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_1_epochs=350"),
    "optimizer": ("lars", f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_1_optimizer=LARS"),
    "lars_eta": (0.001, f"{_GR}utils.py: ETA_DEFAULT = 0.001"),
    "momentum": (0.9, f"{_GR}utils.py build_optimizer: momentum=0.9"),
    "learning_rate": (0.4, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_1_base_learning_rate=0.4 (per 256)"),
    "weight_decay": (1e-3, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_1_weight_decay=1e-3"),
    "lr_schedule": ("cosine", f"{_GR}hparams_flags: stage_1_learning_rate_decay default COSINE"),
    "lr_min_fraction": (0.0, f"{_GR}utils.py: tf.train.cosine_decay, alpha 0"),
    "warmup_epochs": (12.0, f"{_GR}hparams_flags: stage_1_warmup_epochs default 12"),
    "warmup_start_learning_rate": (0.0, f"{_GR}utils.py maybe_add_warmup_to_lr: linear from 0"),
    "linear_optimizer": ("rmsprop", f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_2_optimizer=RMSPROP"),
    "linear_momentum": (0.9, f"{_GR}utils.py build_optimizer: RMSProp momentum=0.9"),
    "linear_batch_size": (6144, f"{_GR}launcher.py: stage 2 runs in the same job, same batch"),
    "linear_learning_rate": (0.05, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_2_base_learning_rate=0.05"),
    "linear_epochs": (90, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_2_epochs=90"),
    "linear_warmup_epochs": (12.0, f"{_GR}hparams_flags: stage_2_warmup_epochs default 12"),
    "linear_lr_schedule": ("exponential", f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_2_learning_rate_decay=EXPONENTIAL"),
    "linear_lr_decay_rate": (0.97, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_2_decay_rate=0.97"),
    "linear_lr_epochs_per_decay": (0.5, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_2_epochs_per_decay=0.5"),
    "linear_weight_decay": (1e-6, f"{_GR}scripts/supcon_imagenet_resnet50.sh: --stage_2_weight_decay=1e-6"),
    "linear_label_smoothing": (0.05, f"{_GR}configs.sh IMAGENET_FLAGS: --label_smoothing=0.05"),
    "linear_augmentation": ("autoaugment", f"{_GR}launcher.py: one input_fn for both stages"),
    "linear_normalize_input": (True, f"{_GR}hparams_flags: normalize_classifier_inputs=FLAGS.normalize_embedding"),
}

SUPCON_IMAGENET_R200 = dict(SUPCON_IMAGENET_R50, **{
    "depth": (200, f"{_GR}configs.sh RESNET200x1_FLAGS: --resnet_depth=200"),
    "batch_size": (4096, f"{_GR}scripts/supcon_imagenet_resnet200.sh: --batch_size=4096"),
    "linear_batch_size": (4096, f"{_GR}launcher.py: stage 2 in the same job, same batch"),
    "augmentation": ("stacked_randaugment", f"{_GR}scripts/supcon_imagenet_resnet200.sh: --augmentation_type=STACKED_RANDAUGMENT"),
    "linear_augmentation": ("stacked_randaugment", f"{_GR}launcher.py: one input_fn for both stages"),
    "color_jitter_strength": (1.0, f"{_GR}scripts/supcon_imagenet_resnet200.sh: --augmentation_magnitude=1.0"),
    "blur": ("on", f"{_GR}configs.sh IMAGENET_FLAGS: --blur_probability=0.5 (applied for STACKED_RANDAUGMENT)"),
    "randaugment_layers": (2, "tensorflow/models augment.RandAugment default num_layers=2"),
    "randaugment_magnitude": (10.0, "tensorflow/models augment.RandAugment default magnitude=10."),
    "learning_rate": (0.2, f"{_GR}scripts/supcon_imagenet_resnet200.sh: --stage_1_base_learning_rate=0.2"),
    "weight_decay": (1e-4, f"{_GR}scripts/supcon_imagenet_resnet200.sh: --stage_1_weight_decay=1e-4"),
    "epochs": (700, f"{_GR}scripts/supcon_imagenet_resnet200.sh: --stage_1_epochs=700"),
})

SIMCLR_IMAGENET_R50 = dict(SUPCON_IMAGENET_R50, **{
    "method": ("simclr", f"{_GR}configs.sh SIMCLR_FLAGS"),
    "augmentation": ("simaugment", f"{_GR}scripts/simclr_imagenet_resnet50.sh: --augmentation_type=SIMCLR"),
    "linear_augmentation": ("simaugment", f"{_GR}launcher.py: one input_fn for both stages"),
    "color_jitter_strength": (1.0, f"{_GR}scripts/simclr_imagenet_resnet50.sh: --augmentation_magnitude=1.0"),
    "blur": ("on", f"{_GR}configs.sh: --blur_probability=0.5, applied for SIMCLR"),
    "base_temperature": (0.1, f"{_GR}configs.sh SIMCLR_FLAGS: --scale_by_temperature=False (scale 1)"),
    "head_dims": ((2048, 2048, 128), f"{_GR}configs.sh SIMCLR_FLAGS: --projection_head_layers=2048,2048,128"),
    "head_batch_norm": (True, f"{_GR}configs.sh SIMCLR_FLAGS: --use_projection_batch_norm=True"),
    "head_normalize_input": (False, f"{_GR}configs.sh SIMCLR_FLAGS: --normalize_embedding=False"),
    "linear_normalize_input": (False, f"{_GR}configs.sh SIMCLR_FLAGS: --normalize_embedding=False"),
    "learning_rate": (0.3, f"{_GR}scripts/simclr_imagenet_resnet50.sh: --stage_1_base_learning_rate=0.3"),
    "weight_decay": (1e-4, f"{_GR}scripts/simclr_imagenet_resnet50.sh: --stage_1_weight_decay=1e-4"),
    "epochs": (100, f"{_GR}scripts/simclr_imagenet_resnet50.sh: --stage_1_epochs=100"),
    "linear_optimizer": ("nesterov", f"{_GR}scripts/simclr_imagenet_resnet50.sh: --stage_2_optimizer=NESTEROV"),
    "linear_learning_rate": (0.1, f"{_GR}scripts/simclr_imagenet_resnet50.sh: --stage_2_base_learning_rate=0.1"),
    "linear_lr_schedule": ("cosine", f"{_GR}hparams_flags: stage_2_learning_rate_decay default COSINE"),
    "linear_weight_decay": (1e-6, f"{_GR}scripts/simclr_imagenet_resnet50.sh: --stage_2_weight_decay=1e-6"),
})
del SIMCLR_IMAGENET_R50["linear_lr_decay_rate"], SIMCLR_IMAGENET_R50["linear_lr_epochs_per_decay"]

SIMCLR_CIFAR10 = dict(SUPCON_CIFAR10, **{
    "method": ("simclr", f"{_README}: main_supcon.py --method SimCLR"),
    "temperature": (0.5, f"{_README}: SimCLR --temp 0.5"),
    "linear_learning_rate": (0.5, f"{_README}: SimCLR main_linear.py --learning_rate 1 at batch 512"),
})

GENSCL_CIFAR100 = dict(SUPCON_CIFAR10, **{
    "dataset": ("cifar100", "kiimmm/GenSCL README: --dataset cifar100"),
    "method": ("genscl", "kiimmm/GenSCL genscl.py"),
    "mixup": (1.0, f"{_GS}: --mix mixup_cutmix, --mix-alpha default 1.0"),
    "cutmix": (1.0, f"{_GS}: --mix mixup_cutmix, --mix-alpha default 1.0"),
    "epochs": (500, f"{_GS}: --epochs default 500"),
    "learning_rate": (0.125, f"{_GS}: --learning-rate default 0.5 at --batch-size 1024"),
    "warmup_epochs": (10.0, f"{_GS}: --warm default True, --warm-epochs 10"),
    "warmup_start_learning_rate": (0.01, f"{_GS}: --warmup-from default 0.01"),
    "kd_alpha": (1.0, f"{_GS}: --KD-alpha default 1"),
    "kd_temperature": (1.0, f"{_GS}: --KD-temp default 1"),
    "linear_warmup_epochs": (5.0, f"{_GS} linear_parser: --warm always on, --warm-epochs 5"),
})

OFFICIAL = {
    "supcon_cifar10": SUPCON_CIFAR10,
    "supcon_cifar100": dict(SUPCON_CIFAR10, dataset=("cifar100", f"{_README}: --dataset cifar100")),
    "simclr_cifar10": SIMCLR_CIFAR10,
    "ce_cifar10": CE_CIFAR10,
    "ce_cifar100": dict(CE_CIFAR10, dataset=("cifar100", f"{_CE}: --dataset cifar100")),
    "supcon_imagenet_resnet50": SUPCON_IMAGENET_R50,
    "supcon_imagenet_resnet200": SUPCON_IMAGENET_R200,
    "simclr_imagenet_resnet50": SIMCLR_IMAGENET_R50,
    "genscl_cifar100": GENSCL_CIFAR100,
}


def _resolve(path):
    values = flags.FlagValues()
    supcon_flags.define_train_flags(values)
    cwd = os.getcwd()
    os.chdir(ROOT)  # Recipes include each other by paths relative to the repository root.
    try:
        values(["train.py", f"--flagfile={path}"])
    finally:
        os.chdir(cwd)
    return supcon_flags.train_config(values)


def _set_explicitly(path):
    """The flag names a recipe sets itself or through the recipes it includes."""
    names = set()
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        for line in f:
            match = re.match(r"--(?:no)?(\w+)(?:=(.*))?$", line.strip())
            if not match:
                continue
            if match.group(1) == "flagfile":
                names |= _set_explicitly(match.group(2))
            else:
                names.add(match.group(1))
    return names


def test_every_recipe_has_a_table_and_every_table_a_recipe():
    assert {r.name for r in recipes.RECIPES} == set(OFFICIAL)
    on_disk = {name[:-len(".flags")] for name in os.listdir(os.path.join(ROOT, "configs"))}
    assert on_disk == set(OFFICIAL)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_recipe_matches_its_source_field_by_field(name):
    recipe = next(r for r in recipes.RECIPES if r.name == name)
    config = _resolve(recipe.path)
    explicit = _set_explicitly(recipe.path)
    for field, (value, source) in OFFICIAL[name].items():
        assert field in explicit, f"{name} leaves {field} to a default; its source: {source}"
        got = getattr(config, field)
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-12), f"{name}.{field}: {got} != {value} ({source})"
        else:
            assert got == value, f"{name}.{field}: {got!r} != {value!r} ({source})"


def test_print_config_resolves_a_recipe_without_touching_data(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "--flagfile=configs/supcon_imagenet_resnet200.flags",
         "--print_config", f"--model_dir={tmp_path}/run", "--data_dir=/nonexistent"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import json  # noqa: PLC0415

    printed = json.loads(result.stdout)
    assert printed["depth"] == 200 and printed["learning_rate"] == 0.2
    assert printed["warmup_epochs"] == 12.0 and printed["linear_lr_schedule"] == "exponential"
    assert not os.path.exists(tmp_path / "run") and result.stderr == ""


def test_recipes_listing():
    result = subprocess.run([sys.executable, "-m", "supcon.recipes", "--markdown"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert all(f"`{name}`" in result.stdout for name in OFFICIAL)
