"""Shared test data makers for tests/data (a tiny TFDS builder, image files)."""

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

TINY_TFDS_NAME = "supcon_tiny_shapes"


class SupconTinyShapes(tfds.core.GeneratorBasedBuilder):
    """3 classes of 16x16 grayscale images (class = brightness band), built offline."""

    VERSION = tfds.core.Version("1.0.0")
    # No source file to look up checksums next to (that lookup needs the optional
    # `importlib_resources` package, which the venv lacks): nothing is downloaded anyway.
    code_path = None

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(16, 16, 1)),
                "label": tfds.features.ClassLabel(names=["dark", "mid", "bright"]),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {"train": self._generate_examples(12, 0), "test": self._generate_examples(6, 1)}

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for i in range(count):
            label = i % 3
            image = rng.integers(80 * label, 80 * label + 60, (16, 16, 1)).astype(np.uint8)
            yield f"{seed}-{i}", {"image": image, "label": label}


def write_image(path, color, size=(20, 24), fmt=None):
    """Writes a solid-color RGB image of `size` (width, height) with some noise."""
    rng = np.random.default_rng(abs(hash(path)) % 2**32)
    pixels = np.clip(np.array(color)[None, None] + rng.integers(-20, 20, (size[1], size[0], 3)),
                     0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
