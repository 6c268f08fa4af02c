"""The 19 corruptions at every severity on 32x32 and 224x224 images."""

import numpy as np
import pytest

from supcon.evaluation import corrupt
from supcon.evaluation import corruption_params as cp


def _smooth_image(size, seed):
    """A deterministic 'natural-ish' picture: colour gradients plus flat discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.5 + 0.4 * np.sin(3 * xx + seed), 0.4 + 0.3 * yy, 0.3 + 0.3 * np.cos(4 * yy * xx)], -1)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1, 3)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < (0.1 + 0.2 * r) ** 2] = rng.uniform(0, 1, 3)
    return np.uint8(np.clip(image, 0, 1) * 255)


IMAGES = {32: np.stack([_smooth_image(32, 0), _smooth_image(32, 1)]), 224: _smooth_image(224, 0)[None]}


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("name", cp.ALL_CORRUPTIONS)
def test_corruption_shape_range_determinism_and_monotone_severity(name, size):
    images = IMAGES[size]
    preset = cp.preset_for_image_size(size, size)
    distances = []
    for severity in cp.SEVERITIES:
        out = corrupt(images, name, severity, seed=3)
        assert out.shape == images.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 255.0
        np.testing.assert_array_equal(out, corrupt(images, name, severity, seed=3))
        distances.append(float(np.abs(out - images).mean()))
    assert distances[0] > 0.0, "severity 1 must change the image"
    exempt = set(cp.NON_MONOTONE_DISTANCE[preset].get(name, ()))
    for s in range(1, 5):
        if (s, s + 1) in exempt:
            continue
        # Ties within 1%: two severities can differ only in a negligible kernel tail.
        assert distances[s] >= 0.99 * distances[s - 1], (name, size, distances)
    if not exempt:
        assert distances[4] > distances[0], (name, size, distances)


def test_seed_and_index_change_the_noise_and_batching_does_not():
    images = IMAGES[32]
    a = corrupt(images, "gaussian_noise", 3, seed=0)
    assert not np.array_equal(a, corrupt(images, "gaussian_noise", 3, seed=1))
    assert not np.array_equal(a[0], corrupt(images[0], "gaussian_noise", 3, seed=0, index_offset=1))
    np.testing.assert_array_equal(a[1], corrupt(images[1], "gaussian_noise", 3, seed=0, index_offset=1))


def test_presets_follow_image_size_and_published_tables():
    assert cp.preset_for_image_size(32, 32) == "cifar10"
    assert cp.preset_for_image_size(224, 224) == "imagenet"
    assert cp.corruption_params("gaussian_noise", 1, "cifar10") == (0.04,)
    assert cp.corruption_params("gaussian_noise", 5, "imagenet") == (0.38,)
    assert cp.corruption_params("jpeg_compression", 5, "imagenet") == (7,)
    for table in (cp.CIFAR10_C_PARAMS, cp.IMAGENET_C_PARAMS):
        assert set(table) == set(cp.ALL_CORRUPTIONS)
        for name, rows in table.items():
            assert len(rows) == 5 and all(len(r) == len(cp.PARAM_FIELDS[name]) for r in rows)


def test_contrast_matches_the_formula():
    image = IMAGES[32][0]
    x = image / 255.0
    mean = x.mean(axis=(0, 1), keepdims=True)
    expected = np.floor(np.clip((x - mean) * 0.15 + mean, 0, 1) * 255 + 1e-4)
    np.testing.assert_array_equal(corrupt(image, "contrast", 5), expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="fogg", severity=1), "Unknown corruption 'fogg'"),
        (dict(name="fog", severity=6), "severity=6"),
        (dict(name="fog", severity=1, seed=-1), "seed=-1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        corrupt(IMAGES[32][0], **kwargs)


def test_bad_shape():
    with pytest.raises(ValueError, match="images.shape"):
        corrupt(np.zeros((32, 32)), "fog", 1)


def test_jpeg_quality_and_fog_map_size_as_the_published_scripts():
    # hendrycks/robustness, ImageNet-C/create_c/ (line numbers of the stored
    # versions): make_cifar_c.py l.364 `c = [80, 65, 58, 50, 40]` and l.63
    # `def plasma_fractal(mapsize=32, ...)` (fog, l.233, keeps the default);
    # make_imagenet_c.py l.520 `c = [25, 18, 15, 10, 7]` and l.182 `mapsize=256`.
    assert [cp.corruption_params("jpeg_compression", s, "cifar10") for s in cp.SEVERITIES] == [
        (80,), (65,), (58,), (50,), (40,)
    ]
    assert [cp.corruption_params("jpeg_compression", s, "imagenet") for s in cp.SEVERITIES] == [
        (25,), (18,), (15,), (10,), (7,)
    ]
    assert cp.FOG_MAPSIZE == {"cifar10": 32, "imagenet": 256}
    assert cp.fog_mapsize(32, 32) == 32 and cp.fog_mapsize(224, 224) == 256
    assert cp.fog_mapsize(64, 64) == 64  # make_tinyimagenet_c.py: mapsize=64 for 64 px images.
    assert cp.fog_mapsize(33, 20) == 64 and cp.fog_mapsize(100, 150) == 256


def test_cifar_fog_spans_the_whole_plasma_map():
    # The map is normalized to [0, 1] over its whole side; at 32 px the image *is*
    # the map, so on a white image (max_val = 1) the fog reaches both ends:
    # (1 + c0 * fog) / (1 + c0) * 255 gives 255 where fog = 1 and 255 / (1 + c0) where fog = 0.
    white = np.full((32, 32, 3), 255, np.uint8)
    for severity in cp.SEVERITIES:
        c0 = cp.corruption_params("fog", severity, "cifar10")[0]
        for seed in range(3):
            out = corrupt(white, "fog", severity, seed=seed)
            assert out.max() == 255.0
            assert out.min() == np.floor(255.0 / (1.0 + c0) + 1e-4), (severity, seed)
