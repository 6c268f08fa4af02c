"""Strength parameters of the common-corruption benchmarks, as data.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (arXiv 1903.12261). The tables below
are the per-severity constants of the authors' generation scripts
(github.com/hendrycks/robustness: `ImageNet-C/create_c/make_cifar_c.py` and
`make_imagenet_c.py`); tuple fields are named in `PARAM_FIELDS`. Two presets:

* `"cifar10"`: CIFAR-10-C (32x32 images). Used for images whose longer side is
  at most `SMALL_IMAGE_MAX_SIDE` pixels.
* `"imagenet"`: ImageNet-C (224x224 images). Used for larger images.

Constants given in pixels for a fixed image size in the scripts (CIFAR-10-C's
elastic transform in units of 32, ImageNet-C's in units of "244", a typo for
224 kept by the authors) are stored in those units and rescaled to the actual
image size by `supcon.evaluation.corruptions`.
"""

import numpy as np

# The 15 corruptions of the benchmark (mCE averages over these, in this order:
# the order of the published AlexNet errors below).
BENCHMARK_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
# The 4 held-out corruptions ("validation" corruptions of the paper's §3).
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES = (1, 2, 3, 4, 5)

# Images whose longer side is at most this many pixels get the CIFAR-10-C
# parameters, larger ones the ImageNet-C parameters.
SMALL_IMAGE_MAX_SIDE = 64
PRESETS = ("cifar10", "imagenet")

# Meaning of each tuple entry, for readers and for report.json.
PARAM_FIELDS = {
    "gaussian_noise": ("sigma",),
    "shot_noise": ("photons_per_unit",),
    "impulse_noise": ("amount",),
    "speckle_noise": ("sigma",),
    "gaussian_blur": ("sigma",),
    "glass_blur": ("sigma", "max_delta", "iterations"),
    "defocus_blur": ("radius", "alias_blur"),
    "motion_blur": ("radius", "sigma"),
    "zoom_blur": ("zoom_start", "zoom_stop", "zoom_step"),
    "snow": ("loc", "scale", "zoom", "threshold", "blur_radius", "blur_sigma", "blend"),
    "frost": ("image_weight", "frost_weight"),
    "fog": ("strength", "wibble_decay"),
    "brightness": ("value_shift",),
    "contrast": ("factor",),
    "elastic_transform": ("alpha", "sigma", "affine"),
    "pixelate": ("scale",),
    "jpeg_compression": ("quality",),
    "spatter": ("loc", "scale", "sigma", "threshold", "intensity", "mud"),
    "saturate": ("factor", "shift"),
}

# CIFAR-10-C, make_cifar_c.py. Elastic transform entries are in units of the
# image side (the script writes IMSIZE * f with IMSIZE = 32).
CIFAR10_C_PARAMS = {
    "gaussian_noise": ((0.04,), (0.06,), (0.08,), (0.09,), (0.10,)),
    "shot_noise": ((500,), (250,), (100,), (75,), (50,)),
    "impulse_noise": ((0.01,), (0.02,), (0.03,), (0.05,), (0.07,)),
    "speckle_noise": ((0.06,), (0.1,), (0.12,), (0.16,), (0.2,)),
    "gaussian_blur": ((0.4,), (0.6,), (0.7,), (0.8,), (1.0,)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": ((0.05,), (0.1,), (0.15,), (0.2,), (0.3,)),
    "contrast": ((0.75,), (0.5,), (0.4,), (0.3,), (0.15,)),
    "elastic_transform": (
        (0.0, 0.0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
    "pixelate": ((0.95,), (0.9,), (0.85,), (0.75,), (0.65,)),
    # make_cifar_c.py l.364: `c = [80, 65, 58, 50, 40]`.
    "jpeg_compression": ((80,), (65,), (58,), (50,), (40,)),
    "spatter": (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
}

# ImageNet-C, make_imagenet_c.py. Elastic transform entries are in units of
# 244 px (the script's constant; see module docstring).
IMAGENET_C_PARAMS = {
    "gaussian_noise": ((0.08,), (0.12,), (0.18,), (0.26,), (0.38,)),
    "shot_noise": ((60,), (25,), (12,), (5,), (3,)),
    "impulse_noise": ((0.03,), (0.06,), (0.09,), (0.17,), (0.27,)),
    "speckle_noise": ((0.15,), (0.2,), (0.35,), (0.45,), (0.6,)),
    "gaussian_blur": ((1,), (2,), (3,), (4,), (6,)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
    "snow": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
    "brightness": ((0.1,), (0.2,), (0.3,), (0.4,), (0.5,)),
    "contrast": ((0.4,), (0.3,), (0.2,), (0.1,), (0.05,)),
    "elastic_transform": (
        (2.0, 0.7, 0.1),
        (2.0, 0.08, 0.2),
        (0.05, 0.01, 0.02),
        (0.07, 0.01, 0.02),
        (0.12, 0.01, 0.02),
    ),
    "pixelate": ((0.6,), (0.5,), (0.4,), (0.3,), (0.25,)),
    # make_imagenet_c.py l.520: `c = [25, 18, 15, 10, 7]`.
    "jpeg_compression": ((25,), (18,), (15,), (10,), (7,)),
    "spatter": (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
}
# The unit the elastic-transform table is written in, per preset (pixels).
ELASTIC_UNIT = {"cifar10": 32.0, "imagenet": 244.0}
ELASTIC_REFERENCE_SIDE = {"cifar10": 32.0, "imagenet": 224.0}

_TABLES = {"cifar10": CIFAR10_C_PARAMS, "imagenet": IMAGENET_C_PARAMS}

# Side of fog's plasma-fractal map (`plasma_fractal(mapsize=...)`, cropped to the
# image): make_cifar_c.py l.63 `def plasma_fractal(mapsize=32, ...)` (fog at
# l.233 keeps the default: the map is the 32 px image itself), make_imagenet_c.py
# l.182 `mapsize=256` (cropped to 224 at l.386), and make_tinyimagenet_c.py
# `mapsize=64` for 64 px images. All three are the smallest power of two that
# covers the image, which `fog_mapsize` applies to any size.
FOG_MAPSIZE = {"cifar10": 32, "imagenet": 256}


def fog_mapsize(height, width):
    """Side of the fog's plasma map for an image: the smallest power of two >= its longer side.

    Example:
      >>> fog_mapsize(32, 32), fog_mapsize(224, 224)
      (32, 256)
    """
    return 1 << (max(int(height), int(width)) - 1).bit_length()

# Corruptions whose recipe needs something we do not ship or do not port
# bit-exactly; the report marks their numbers as approximate.
APPROXIMATE_CORRUPTIONS = {
    "frost": "procedural frost texture instead of the benchmark's six frost photographs",
    "motion_blur": "NumPy port of ImageMagick's MotionBlurImage (as in the imagecorruptions package), "
    "not the ImageMagick binary the benchmark used",
    "snow": "snow streaks use the same NumPy motion-blur port instead of ImageMagick",
    "spatter": "Canny edges, distance transform and histogram equalization re-implemented with "
    "NumPy/SciPy instead of OpenCV",
}

# Consecutive severities (s, s + 1) at which the *published* parameters bring
# the corrupted image closer to the clean one in pixel space (mean absolute
# difference), measured on smooth test images and explained by the tables:
# * saturate: severities 1-2 desaturate, 3-5 oversaturate (3 changes less than 2).
# * frost: c0 * image + c1 * frost with frost brighter than the image; where c0
#   drops and c1 does not rise enough, the darker image cancels part of the frost.
# * elastic_transform: CIFAR-10-C shrinks the random affine warp from severity 1
#   to 5 while growing a much smaller elastic warp; ImageNet-C uses large affine
#   warps at 1-2 and small ones at 3-5.
# * snow: severity 3 has fewer (if larger and brighter) flakes than severity 2.
# * spatter: CIFAR-10-C switches from water drops (1-3) to mud (4-5).
# Every other step increases the distance (ties within 1% where two severities
# differ only in a negligible kernel tail, e.g. CIFAR-10-C motion blur 3 vs 4).
NON_MONOTONE_DISTANCE = {
    "cifar10": {
        "saturate": ((2, 3),),
        "frost": ((3, 4), (4, 5)),
        "elastic_transform": ((1, 2), (2, 3), (3, 4), (4, 5)),
        "snow": ((2, 3),),
        "spatter": ((3, 4),),
    },
    "imagenet": {
        "saturate": ((2, 3),),
        "frost": ((3, 4),),
        "elastic_transform": ((2, 3),),
        "snow": ((2, 3),),
    },
}

# AlexNet's ImageNet-C errors (top-1, averaged over the 5 severities), in the
# order of BENCHMARK_CORRUPTIONS: the normalizer of the Corruption Error,
# Hendrycks & Dietterich 2019 §4 (CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c}).
# Values from github.com/hendrycks/robustness as reproduced in AugMix's
# imagenet.py (google-research/augmix, `ALEXNET_ERR`).
ALEXNET_ERRORS = dict(
    zip(
        BENCHMARK_CORRUPTIONS,
        (
            0.886428,
            0.894468,
            0.922640,
            0.819880,
            0.826268,
            0.785948,
            0.798360,
            0.866816,
            0.826572,
            0.819324,
            0.564592,
            0.853204,
            0.646056,
            0.717840,
            0.606500,
        ),
    )
)
# AlexNet's clean ImageNet top-1 error (torchvision's AlexNet, top-1 accuracy
# 56.522%), the clean baseline of the relative mCE (paper §4: 43.5%).
ALEXNET_CLEAN_ERROR = 0.43478


def preset_for_image_size(height, width):
    """Returns the benchmark preset for an image size.

    Args:
      height: int, image height in pixels.
      width: int, image width in pixels.

    Returns:
      `"cifar10"` when `max(height, width) <= SMALL_IMAGE_MAX_SIDE`, else `"imagenet"`.

    Example:
      >>> preset_for_image_size(32, 32)
      'cifar10'
    """
    return "cifar10" if max(int(height), int(width)) <= SMALL_IMAGE_MAX_SIDE else "imagenet"


def corruption_params(name, severity, preset):
    """Returns the parameter tuple of one corruption at one severity.

    Args:
      name: str, one of `ALL_CORRUPTIONS`.
      severity: int in 1..5.
      preset: `"cifar10"` or `"imagenet"`.

    Returns:
      tuple of numbers, fields named by `PARAM_FIELDS[name]`.

    Example:
      >>> corruption_params("contrast", 5, "imagenet")
      (0.05,)
    """
    check_corruption_name(name)
    check_severity(severity)
    if preset not in _TABLES:
        raise ValueError(f"`preset` must be one of {PRESETS}. Received: preset={preset!r}")
    return tuple(_TABLES[preset][name][int(severity) - 1])


def check_corruption_name(name):
    """Raises a one-line ValueError for an unknown corruption name."""
    if name not in ALL_CORRUPTIONS:
        raise ValueError(
            f"Unknown corruption {name!r}; expected one of: {', '.join(ALL_CORRUPTIONS)}. "
            f"Received: name={name!r}"
        )


def check_severity(severity):
    """Raises a one-line ValueError for a severity outside 1..5."""
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"`severity` must be an integer in 1..5. Received: severity={severity!r}")
