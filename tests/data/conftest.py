"""Fixtures for tests/data: a generated image folder and a tiny offline TFDS data set."""

import os

import pytest

from tests.data._helpers import SupconTinyShapes
from tests.data._helpers import write_image


@pytest.fixture(scope="session")
def tiny_tfds_dir(tmp_path_factory):
    """A data_dir holding the prepared `supcon_tiny_shapes` TFDS data set."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    SupconTinyShapes(data_dir=data_dir).download_and_prepare()
    return data_dir


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """`root/{red,green,blue}/` with JPEG/PNG/BMP/GIF images and one corrupt file."""
    root = tmp_path_factory.mktemp("folder")
    colors = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    formats = [("jpg", "JPEG"), ("png", "PNG"), ("bmp", "BMP"), ("gif", "GIF"), ("jpeg", "JPEG")]
    for name, color in colors.items():
        os.makedirs(root / name)
        for i, (ext, fmt) in enumerate(formats):
            write_image(str(root / name / f"img{i}.{ext}"), color, fmt=fmt)
    (root / "red" / "broken.jpg").write_bytes(b"this is not a jpeg")
    (root / "notes.txt").write_text("not a class folder")
    return str(root)
