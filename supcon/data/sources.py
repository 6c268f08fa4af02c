"""Data sources: the embedded `digits` set, TFDS data sets, and image folders.

`load(name, split)` returns a `Source`: an unbatched `tf.data.Dataset` of
`(uint8 image [H, W, 3], int32 label)` plus its size and a `DatasetInfo`.

Names:
  * `"digits"` (default, offline): scikit-learn's bundled handwritten digits (UCI
    "Optical Recognition of Handwritten Digits", 1797 images of 8x8 pixels with 17 gray
    levels, 10 classes), scaled to 0..255, resized bilinearly to 16x16 (twice the
    original side, so nothing is lost; a main-job step on 2 CPU cores takes about half
    its time at 32x32) and repeated over 3 channels. Fixed stratified split: `train_test_split(test_size=0.2,
    stratify=labels, random_state=0)`, i.e. 1437 train and 360 test images (143-146
    and 35-37 per class). The split does not depend on `seed`, so runs with different
    seeds are evaluated on the same test images.
  * Any TFDS image classification data set (`"cifar10"`, `"cifar100"`,
    `"imagenet2012"`, `"imagenette"`, with an optional `:config/version`) read from
    `data_dir`. Nothing is ever downloaded: a data set that is not prepared there is a
    `FileNotFoundError` saying where it was looked for and how to prepare it.
  * `"folder:PATH"`: one subfolder per class with JPEG/PNG/BMP/GIF files, either
    directly under PATH (split by a seeded stratified 80/20 split into `train`/`test`)
    or under `PATH/train` and `PATH/test` (with the same class folders). At least two
    classes, every class folder with images. Files are checked up front with Pillow;
    unreadable ones are skipped and counted in one warning (none readable: an error).
"""

import contextlib
import dataclasses
import functools
import os
import warnings

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from supcon.data import decode as _decode

DIGITS_IMAGE_SIZE = 16
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
FOLDER_TEST_FRACTION = 0.2
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
FOLDER_PREFIX = "folder:"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a source knows about its data set.

    Attributes:
        name: the name passed to `load`.
        num_classes: number of classes; labels are `0 .. num_classes - 1`.
        image_shape: `(H, W, 3)`; `H`, `W` are `None` when images vary in size.
        split_sizes: `{split name: number of examples}`.
        class_names: class names in label order (may be empty for TFDS sets without names).
    """

    name: str
    num_classes: int
    image_shape: tuple
    split_sizes: dict
    class_names: tuple = ()


@dataclasses.dataclass(frozen=True)
class Source:
    """One split of a data set.

    Attributes:
        dataset: unbatched `tf.data.Dataset` of `(uint8 [H, W, 3], int32 [])`, in a fixed
            order (shuffling is the pipeline's job).
        num_examples: number of elements of `dataset`. For `folder:` sources, the files
            that passed the up-front check; a file that Pillow reads but TensorFlow then
            cannot decode is dropped from `dataset` (and logged) without being subtracted.
        info: the data set's `DatasetInfo`.
        split: the split this is.
        encoded: None, or `dataset` before decoding: `(scalar tf.string of the encoded
            image, int32 [])` in the same order, for pipelines that decode JPEGs inside
            the crop window only (`supcon.data.decode`).
    """

    dataset: tf.data.Dataset
    num_examples: int
    info: DatasetInfo
    split: str
    encoded: tf.data.Dataset | None = None


def load(name="digits", split="train", *, data_dir=None, seed=0):
    """Loads one split of a data set as an unbatched `tf.data.Dataset`.

    Args:
        name: `"digits"`, a TFDS name (e.g. `"cifar10"`), or `"folder:PATH"`.
        split: `"train"` or `"test"` (TFDS also takes its own split strings, e.g.
            `"validation"` or `"train[:10%]"`).
        data_dir: TFDS data directory (default: TFDS's own default). Ignored otherwise.
        seed: seed of the train/test split of a `folder:` source without `train`/`test`
            subfolders. Digits and TFDS have fixed splits.

    Returns:
        A `Source`.

    Raises:
        ValueError: unknown split or data set; a folder with no images, one class, a
            class folder without images, train/test class folders that differ, or a
            split without (readable) images.
        FileNotFoundError: a TFDS data set that is not prepared in `data_dir`, or a
            folder that does not exist.
        NotADirectoryError: a `folder:` path that is a file.

    Example:
        >>> source = load("digits", "train")
        >>> source.num_examples, source.info.num_classes, source.info.image_shape
        (1437, 10, (16, 16, 3))
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    if name == "digits":
        return _load_digits(split)
    if name.startswith(FOLDER_PREFIX):
        return _load_folder(name, split, seed)
    return _load_tfds(name, split, data_dir)


# --- digits -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    """`{split: (uint8 [N, 16, 16, 3], int32 [N])}` for the fixed digits split."""
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
    from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel

    digits = load_digits()
    images = digits.images.astype(np.float32) * (255.0 / 16.0)  # 17 gray levels, 0..16.
    images = tf.image.resize(images[..., None], [DIGITS_IMAGE_SIZE] * 2, method="bilinear")
    images = np.clip(np.round(images.numpy()), 0, 255).astype(np.uint8)
    images = np.repeat(images, 3, axis=-1)
    labels = digits.target.astype(np.int32)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels,
        random_state=DIGITS_SPLIT_SEED)
    return {"train": (images[train_idx], labels[train_idx]),
            "test": (images[test_idx], labels[test_idx])}


def _load_digits(split):
    arrays = _digits_arrays()
    if split not in arrays:
        raise ValueError(f"`split` must be 'train' or 'test' for digits. Received: split={split!r}")
    images, labels = arrays[split]
    info = DatasetInfo(
        name="digits", num_classes=10, image_shape=(DIGITS_IMAGE_SIZE, DIGITS_IMAGE_SIZE, 3),
        split_sizes={k: len(v[1]) for k, v in arrays.items()},
        class_names=tuple(str(d) for d in range(10)))
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return Source(dataset=dataset, num_examples=len(labels), info=info, split=split)


# --- TFDS -------------------------------------------------------------------------------


def _load_tfds(name, split, data_dir):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    try:
        # Builders are code: constructing one reads nothing from the network (try_gcs=False).
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except tfds.core.DatasetNotFoundError as error:
        raise ValueError(
            f"No data source named {name!r}: it is neither 'digits', 'folder:PATH', nor a "
            f"TFDS data set (see `tfds.list_builders()`). Received: name={name!r}") from error
    # TFDS logs a warning for each version folder without metadata; a set that is not prepared
    # is explained by the error below instead.
    with _absl_log_level(absl_logging.ERROR):
        prepared = builder.is_prepared()
    if not prepared:
        raise FileNotFoundError(
            f"TFDS data set {name!r} is not prepared: looked for it in {builder.data_dir!r} "
            f"(data_dir={data_dir!r}). supcon never downloads data. Prepare it on a machine "
            f"with network access with `tfds build {name} --data_dir=DIR` (or "
            f"`tfds.builder({name!r}, data_dir=DIR).download_and_prepare()`; imagenet2012 "
            "needs the ILSVRC2012 tar files in DIR/downloads/manual first), copy DIR here "
            "and pass --data_dir=DIR. The offline default is `digits`.")
    info = builder.info
    if info.supervised_keys is None or len(info.supervised_keys) != 2:
        raise ValueError(f"TFDS data set {name!r} has no (image, label) supervised keys. "
                         f"Received: name={name!r}")
    image_key, label_key = info.supervised_keys
    image_feature, label_feature = info.features[image_key], info.features[label_key]
    if len(image_feature.shape) != 3 or image_feature.shape[-1] not in (1, 3):
        raise ValueError(f"TFDS data set {name!r} is not an image classification set with "
                         f"[H, W, 1 or 3] images. Received: name={name!r} with image shape "
                         f"{image_feature.shape}")
    split_sizes = {key: value.num_examples for key, value in info.splits.items()}
    try:
        num_examples = info.splits[split].num_examples
    except (KeyError, ValueError) as error:
        raise ValueError(f"TFDS data set {name!r} has splits {sorted(split_sizes)}. "
                         f"Received: split={split!r}") from error
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    dataset = dataset.map(_standardize_example, num_parallel_calls=tf.data.AUTOTUNE)
    encoded = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False,
                                 decoders={image_key: tfds.decode.SkipDecoding()})
    encoded = encoded.map(lambda image, label: (image, tf.cast(label, tf.int32)))
    height, width = image_feature.shape[:2]
    info_out = DatasetInfo(
        name=name, num_classes=label_feature.num_classes, image_shape=(height, width, 3),
        split_sizes=split_sizes, class_names=tuple(getattr(label_feature, "names", ()) or ()))
    return Source(dataset=dataset, num_examples=num_examples, info=info_out, split=split,
                  encoded=encoded)


@contextlib.contextmanager
def _absl_log_level(level):
    saved = absl_logging.get_verbosity()
    absl_logging.set_verbosity(min(saved, level))  # absl: a lower verbosity logs less.
    try:
        yield
    finally:
        absl_logging.set_verbosity(saved)


def _standardize_example(image, label):
    """uint8 RGB `[H, W, 3]` and an int32 label."""
    image = tf.cast(image, tf.uint8)
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return image, tf.cast(label, tf.int32)


# --- image folders ----------------------------------------------------------------------


def _class_files(root):
    """`{class name: [image paths]}` for the class subfolders of `root` (sorted)."""
    classes = {}
    for entry in sorted(os.listdir(root)):
        directory = os.path.join(root, entry)
        if not os.path.isdir(directory):
            continue
        files = []
        for parent, _, names in sorted(os.walk(directory)):
            files.extend(os.path.join(parent, n) for n in sorted(names)
                         if n.lower().endswith(IMAGE_EXTENSIONS))
        classes[entry] = files
    return classes


def _readable(path):
    """The `(height, width)` of a readable image file, or `None` when it is corrupt."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    try:
        with Image.open(path) as image:
            size = image.size
            image.verify()  # Structure and checksums; cheaper than a full decode.
        return size[1], size[0]
    except Exception:  # pylint: disable=broad-except  # Any failure means "skip this file".
        return None


def _split_folder(root, seed, name):
    """`({split: [(path, label)]}, class names)` for a class folder tree."""
    has_split = [s for s in ("train", "test") if os.path.isdir(os.path.join(root, s))]
    if len(has_split) == 2:
        train = _class_files(os.path.join(root, "train"))
        test = _class_files(os.path.join(root, "test"))
        if set(train) != set(test):
            # Labels come from the class names: a class on one side only would be
            # trained and never tested, or tested with no training image.
            raise ValueError(
                f"The class folders of {root}/train and {root}/test must be the same. "
                f"Only in train: {sorted(set(train) - set(test))}; only in test: "
                f"{sorted(set(test) - set(train))}. Received: name={name!r}")
        _check_classes(os.path.join(root, "train"), train, name)
        _check_classes(os.path.join(root, "test"), test, name)
        names = sorted(train)
        splits = {split: [(path, names.index(c)) for c in sorted(files) for path in files[c]]
                  for split, files in (("train", train), ("test", test))}
        return splits, names
    if len(has_split) == 1:
        inner = os.path.join(root, has_split[0])
        if any(os.path.isdir(os.path.join(inner, e)) for e in os.listdir(inner)):
            missing = "test" if has_split[0] == "train" else "train"
            raise ValueError(
                f"Image folder {root!r} has a {has_split[0]!r} folder of classes but no "
                f"{missing!r} folder: give both PATH/train and PATH/test, or the class folders "
                f"directly under PATH. Received: name={name!r}")
    classes = _class_files(root)
    _check_classes(root, classes, name)
    names = sorted(classes)
    rng = np.random.default_rng(seed)
    splits = {"train": [], "test": []}
    for label, class_name in enumerate(names):
        files = list(classes[class_name])
        order = rng.permutation(len(files))
        num_test = int(round(FOLDER_TEST_FRACTION * len(files)))
        for rank, index in enumerate(order):
            splits["test" if rank < num_test else "train"].append((files[index], label))
    for split in splits:
        splits[split].sort()
    return splits, names


def _check_classes(root, classes, name):
    """Raises unless `classes` (`{class: [files]}`) has >= 2 classes, each with image files."""
    non_empty = [c for c, files in sorted(classes.items()) if files]
    if not non_empty:
        raise ValueError(f"Image folder {root!r} holds no class subfolder with "
                         f"{'/'.join(IMAGE_EXTENSIONS)} files. Received: name={name!r}")
    if len(non_empty) < 2:
        raise ValueError(f"Image folder {root!r} has one class ({non_empty[0]!r}); "
                         f"classification needs at least two. Received: name={name!r}")
    empty = sorted(set(classes) - set(non_empty))
    if empty:
        # A class without images would be a label that never occurs (often a stray
        # folder such as `.ipynb_checkpoints`).
        raise ValueError(f"Class folder(s) {empty} of image folder {root!r} hold no "
                         f"{'/'.join(IMAGE_EXTENSIONS)} files; remove them or add images. "
                         f"Received: name={name!r}")


def _load_folder(name, split, seed):
    root = os.path.expanduser(name[len(FOLDER_PREFIX):])
    if not os.path.exists(root):
        raise FileNotFoundError(f"Image folder {root!r} does not exist. Received: name={name!r}")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"Image folder {root!r} is a file, not a folder of class "
                                 f"subfolders. Received: name={name!r}")
    if split not in ("train", "test"):
        raise ValueError(
            f"`split` must be 'train' or 'test' for folders. Received: split={split!r}")
    splits, class_names = _split_folder(root, seed, name)
    if not splits[split]:
        # Only possible for the seeded split: round(20%) of fewer than 3 files is 0.
        raise ValueError(f"Split {split!r} of image folder {root!r} has no images: a class "
                         f"needs at least 3 images for the {FOLDER_TEST_FRACTION:.0%} test "
                         "split to take one; add images or give PATH/train and PATH/test. "
                         f"Received: name={name!r}")

    files, labels, sizes, skipped = [], [], set(), []
    for path, label in splits[split]:
        size = _readable(path)
        if size is None:
            skipped.append(path)
            continue
        files.append(path)
        labels.append(label)
        sizes.add(size)
    examples = ", ".join(os.path.relpath(p, root) for p in skipped[:5])
    examples += " ..." if len(skipped) > 5 else ""
    if not files:
        raise ValueError(f"Split {split!r} of image folder {root!r} has no readable images: "
                         f"all {len(skipped)} image files failed to open ({examples}). "
                         f"Received: name={name!r}")
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} unreadable image file(s) of split {split!r} "
                      f"under {root!r}: {examples}", stacklevel=3)
    height, width = sizes.pop() if len(sizes) == 1 else (None, None)  # None: sizes vary.
    split_sizes = {s: len(v) for s, v in splits.items()}
    split_sizes[split] = len(files)  # Only this split's files were checked.
    info = DatasetInfo(name=name, num_classes=len(class_names), image_shape=(height, width, 3),
                       split_sizes=split_sizes, class_names=tuple(class_names))
    encoded = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files), tf.constant(labels, tf.int32)))
    encoded = encoded.map(lambda path, label: (tf.io.read_file(path), label),
                          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = encoded.map(lambda image, label: (_decode.decode(image), label),
                          num_parallel_calls=tf.data.AUTOTUNE)
    # A file Pillow accepted but TF cannot decode is dropped here instead of failing (a
    # pipeline reading `encoded` drops it where it decodes).
    dataset = dataset.ignore_errors(log_warning=True)
    return Source(dataset=dataset, num_examples=len(files), info=info, split=split,
                  encoded=encoded)
