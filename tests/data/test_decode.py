"""Tests for supcon.data.decode: a JPEG decoded inside crop windows gives the same crops."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from supcon.data import augment
from supcon.data import decode


def _encoded(fmt, size=(500, 375), mode="RGB", subsampling=None):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.BILINEAR).convert(mode)
    buffer = io.BytesIO()
    options = {"quality": 90} if fmt == "JPEG" else {}
    if subsampling is not None:
        options["subsampling"] = subsampling
    image.save(buffer, format=fmt, **options)
    return tf.constant(buffer.getvalue())


# Found with these tests: a window is exact for 4:4:4 JPEGs, grayscale JPEGs and other formats.
# With subsampled chroma (4:2:0, Pillow's and most cameras' default, or 4:2:2) libjpeg
# upsamples the chroma of the decoded window with the window's own edge columns as
# neighbours, so the window's first and last columns can differ from the whole decode (by
# up to ~20 levels; ~6 on average where they differ); every other pixel is exact.
EXACT = [("JPEG", "RGB", 0), ("JPEG", "L", None), ("PNG", "RGB", None)]
SUBSAMPLED = [("JPEG", "RGB", None), ("JPEG", "RGB", 1)]


def _windows(count=60):
    rng = np.random.default_rng(1)
    for _ in range(count):
        y, x = int(rng.integers(0, 300)), int(rng.integers(0, 400))
        yield [y, x], [int(rng.integers(3, 376 - y)), int(rng.integers(3, 501 - x))]


def _box(begin, size):
    return tf.constant(begin + [0]), tf.constant(size + [-1])


@pytest.mark.parametrize("fmt, mode, subsampling", EXACT + SUBSAMPLED)
def test_a_window_is_the_crop_of_the_whole_image(fmt, mode, subsampling):
    encoded = _encoded(fmt, mode=mode, subsampling=subsampling)
    whole = decode.decode(encoded).numpy().astype(np.int32)
    assert whole.shape == (375, 500, 3)
    for begin, size in _windows():
        window, = decode.decode_windows(encoded, lambda shape, b=begin, s=size: [_box(b, s)])
        window = window.numpy().astype(np.int32)
        crop = whole[begin[0]:begin[0] + size[0], begin[1]:begin[1] + size[1]]
        if (fmt, mode, subsampling) in EXACT:
            np.testing.assert_array_equal(window, crop)
        else:
            np.testing.assert_array_equal(window[:, 1:-1], crop[:, 1:-1])
            assert np.abs(window - crop).max() <= 32


@pytest.mark.parametrize("fmt, mode, subsampling", EXACT + SUBSAMPLED)
def test_windows_decoded_together_are_the_crops_of_the_whole_image(fmt, mode, subsampling):
    # Three windows at a time: one decode of their union, then a slice each.
    encoded = _encoded(fmt, mode=mode, subsampling=subsampling)
    whole = decode.decode(encoded).numpy().astype(np.int32)
    boxes = list(_windows(30))
    for group in range(0, len(boxes), 3):
        windows = boxes[group:group + 3]
        crops = decode.decode_windows(encoded, lambda shape: [_box(b, s) for b, s in windows])
        left = min(b[1] for b, _ in windows)
        right = max(b[1] + s[1] for b, s in windows)
        for crop, (begin, size) in zip(crops, windows):
            crop = crop.numpy().astype(np.int32)
            expected = whole[begin[0]:begin[0] + size[0], begin[1]:begin[1] + size[1]]
            if (fmt, mode, subsampling) in EXACT:
                np.testing.assert_array_equal(crop, expected)
                continue
            # Subsampled chroma: only the union's edge columns may differ.
            inner = slice(1 if begin[1] == left else 0,
                          size[1] - 1 if begin[1] + size[1] == right else size[1])
            np.testing.assert_array_equal(crop[:, inner], expected[:, inner])
            assert np.abs(crop - expected).max() <= 32


@pytest.mark.parametrize("fmt, mode, subsampling", EXACT + SUBSAMPLED)
def test_the_random_resized_crop_of_the_bytes_is_that_of_the_image(fmt, mode, subsampling):
    encoded = _encoded(fmt, mode=mode, subsampling=subsampling)
    whole = tf.constant(decode.decode(encoded))
    for k in range(10):
        seed = tf.constant([k, 1], tf.int64)
        fused = augment.random_resized_crop(encoded, 64, seed).numpy()
        reference = augment.random_resized_crop(whole, 64, seed).numpy()
        if (fmt, mode, subsampling) in EXACT:
            np.testing.assert_array_equal(fused, reference)
        else:  # Only the edge columns may differ, and the resize averages them.
            assert np.abs(fused - reference).mean() < 1.0


@pytest.mark.parametrize("fmt, mode, subsampling", EXACT + SUBSAMPLED)
def test_the_views_crops_from_one_decode_are_those_of_the_image(fmt, mode, subsampling):
    encoded = _encoded(fmt, mode=mode, subsampling=subsampling)
    whole = tf.constant(decode.decode(encoded))
    seeds = [tf.constant([k, 2], tf.int64) for k in range(4)]
    fused = augment.crop_views(encoded, 64, seeds).numpy()
    reference = augment.crop_views(whole, 64, seeds).numpy()
    assert fused.shape == (4, 64, 64, 3)
    if (fmt, mode, subsampling) in EXACT:
        np.testing.assert_array_equal(fused, reference)
    else:  # Only the union's edge columns may differ, and the resize averages them.
        assert np.abs(fused - reference).mean() < 1.0
