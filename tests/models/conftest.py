"""Shared fixtures for tests/models: tiny encoders and data so every test stays fast."""

import keras
import numpy as np
import pytest

from supcon import models

IMAGE_SIZE = 16
NUM_CLASSES = 3


@pytest.fixture
def resnet_encoder():
    """ResNet-18, CIFAR stem, 1/8 width on 16x16 images: 64-D embeddings, ~0.2M params."""
    keras.utils.set_random_seed(0)
    return models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))


def make_tiny_encoder(embedding_dim=16):
    """conv-BN-ReLU x2 + pooling: the model logic without ResNet-18's tracing cost."""
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(images)
    for i, filters in enumerate((8, embedding_dim)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(images, keras.layers.GlobalAveragePooling2D()(x), name="tiny_encoder")


@pytest.fixture
def tiny_encoder():
    keras.utils.set_random_seed(0)
    return make_tiny_encoder()


@pytest.fixture
def views_and_labels():
    """8 samples x 2 views of float32 0-255 images and int labels of 3 classes."""
    rng = np.random.default_rng(0)
    views = rng.uniform(0, 255, size=(8, 2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], dtype="int32")
    return views, labels


@pytest.fixture
def restore_policy():
    """Resets the global dtype policy after a mixed-precision test."""
    yield
    keras.config.set_dtype_policy("float32")
