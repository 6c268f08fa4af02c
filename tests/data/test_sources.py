"""Tests for supcon.data.sources: digits, TFDS (offline) and image folders."""

import os
import time
import warnings

import numpy as np
import pytest

from supcon import data
from tests.data._helpers import TINY_TFDS_NAME
from tests.data._helpers import write_image


def _arrays(source):
    images, labels = zip(*source.dataset.as_numpy_iterator())
    return np.stack(images), np.array(labels)


def test_digits_split_sizes_shapes_and_classes():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert (train.num_examples, test.num_examples) == (1437, 360)
    assert train.info.split_sizes == {"train": 1437, "test": 360}
    assert train.info.num_classes == 10 and train.info.image_shape == (16, 16, 3)
    images, labels = _arrays(train)
    assert images.shape == (1437, 16, 16, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and set(labels) == set(range(10))
    assert images.max() == 255 and images.min() == 0
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # Gray over 3 channels.
    # Stratified: every class has 20% (+-1) of its images in test.
    _, test_labels = _arrays(test)
    train_counts, test_counts = np.bincount(labels), np.bincount(test_labels)
    np.testing.assert_allclose(test_counts / (train_counts + test_counts), 0.2, atol=0.01)


def test_digits_split_is_fixed_and_disjoint():
    from sklearn.datasets import load_digits

    train, _ = _arrays(data.load("digits", "train", seed=0))
    train_again, _ = _arrays(data.load("digits", "train", seed=5))
    np.testing.assert_array_equal(train, train_again)
    test, _ = _arrays(data.load("digits", "test"))
    train_keys = {x.tobytes() for x in train}
    assert sum(x.tobytes() in train_keys for x in test) <= 2  # sklearn has a few duplicates.
    # The 16x16 images are the 8x8 originals scaled to 0..255: 2x2 block means agree.
    originals = load_digits().images * 255.0 / 16.0
    means = train[..., 0].reshape(-1, 8, 2, 8, 2).mean(axis=(2, 4))
    matches = [np.abs(originals - m).mean(axis=(1, 2)).min() for m in means[:5]]
    assert max(matches) < 25.0


def test_unknown_split_and_name():
    with pytest.raises(ValueError, match="split='validation'"):
        data.load("digits", "validation")
    with pytest.raises(ValueError, match="name='no_such_data_set_xyz'"):
        data.load("no_such_data_set_xyz", "train", data_dir="/nonexistent")


def test_missing_tfds_data_set_fails_fast_offline(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        data.load("cifar10", "train", data_dir=str(tmp_path))
    message = str(error.value)
    assert str(tmp_path) in message and "tfds build cifar10" in message
    assert "never downloads" in message
    assert time.monotonic() - start < 20
    assert os.listdir(tmp_path) == []  # Nothing was written (or downloaded).


def test_tfds_source_offline(tiny_tfds_dir):
    source = data.load(TINY_TFDS_NAME, "train", data_dir=tiny_tfds_dir)
    assert source.num_examples == 12
    assert source.info.num_classes == 3 and source.info.image_shape == (16, 16, 3)
    assert source.info.split_sizes == {"train": 12, "test": 6}
    assert source.info.class_names == ("dark", "mid", "bright")
    images, labels = _arrays(source)
    assert images.shape == (12, 16, 16, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(images[..., 0], images[..., 1])  # Gray -> RGB.
    with pytest.raises(ValueError, match="split='nope'"):
        data.load(TINY_TFDS_NAME, "nope", data_dir=tiny_tfds_dir)


def test_folder_skips_corrupt_files_with_a_warning(image_folder):
    loaded = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for split in ("train", "test"):
            loaded[split] = data.load(f"folder:{image_folder}", split, seed=0)
    skipped = [w for w in caught if "unreadable" in str(w.message)]
    assert len(skipped) == 1 and "Skipped 1 " in str(skipped[0].message)
    assert "broken.jpg" in str(skipped[0].message)
    train, test = loaded["train"], loaded["test"]
    assert train.num_examples + test.num_examples == 15
    assert test.num_examples == 3  # One per class (20% of 5 or 6).
    assert train.info.num_classes == 3
    assert train.info.class_names == ("blue", "green", "red")
    assert train.info.image_shape == (24, 20, 3)
    images, labels = _arrays(train)
    assert images.shape == (train.num_examples, 24, 20, 3) and images.dtype == np.uint8
    # Class colors survive decoding (JPEG/PNG/BMP/GIF): the labelled channel dominates.
    dominant = images.reshape(len(images), -1, 3).mean(axis=1).argmax(axis=1)
    np.testing.assert_array_equal(dominant, np.array([2, 1, 0])[labels])


def test_folder_split_is_seeded(image_folder):
    def test_files(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images, _ = _arrays(data.load(f"folder:{image_folder}", "test", seed=seed))
        return images

    np.testing.assert_array_equal(test_files(0), test_files(0))
    assert any(not np.array_equal(test_files(0), test_files(s)) for s in (1, 2, 3))


def test_folder_with_train_and_test_subfolders(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for name, color in (("cat", (200, 100, 50)), ("dog", (50, 100, 200))):
            os.makedirs(tmp_path / split / name)
            for i in range(count):
                write_image(str(tmp_path / split / name / f"{i}.png"), color, size=(10 + i, 12))
    train = data.load(f"folder:{tmp_path}", "train")
    test = data.load(f"folder:{tmp_path}", "test")
    assert (train.num_examples, test.num_examples) == (6, 4)
    assert train.info.split_sizes == {"train": 6, "test": 4}
    assert train.info.image_shape == (None, None, 3)  # Sizes vary.
    shapes = {image.shape for image, _ in train.dataset.as_numpy_iterator()}
    assert shapes == {(12, 10, 3), (12, 11, 3), (12, 12, 3)}


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'missing'}", "train")
    with pytest.raises(ValueError, match="no class subfolder"):
        data.load(f"folder:{tmp_path}", "train")
    os.makedirs(tmp_path / "only")
    write_image(str(tmp_path / "only" / "a.png"), (10, 10, 10))
    with pytest.raises(ValueError, match="one class"):
        data.load(f"folder:{tmp_path}", "train")


def test_folder_undecodable_file_is_dropped_by_the_pipeline(tmp_path):
    # Pillow reads this TIFF (it sniffs the content); TF's decode_image cannot.
    for name, color in (("a", (200, 0, 0)), ("b", (0, 0, 200))):
        os.makedirs(tmp_path / "train" / name)
        os.makedirs(tmp_path / "test" / name)
        write_image(str(tmp_path / "train" / name / "ok.png"), color)
        write_image(str(tmp_path / "test" / name / "ok.png"), color)
    write_image(str(tmp_path / "train" / "a" / "tiff.png"), (200, 0, 0), fmt="TIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = data.load(f"folder:{tmp_path}", "train")
    images = [image for image, _ in source.dataset.as_numpy_iterator()]
    assert source.num_examples == 3  # Counted before decoding ...
    assert len(images) == 2 and all(image.shape == (24, 20, 3) for image in images)  # ... dropped.
