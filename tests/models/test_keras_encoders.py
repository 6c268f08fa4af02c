"""`--encoder=keras:NAME`: keras.applications architectures as supcon encoders."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon.models import keras_encoders
from supcon.training import TrainConfig
from supcon.training import run as run_lib


@pytest.mark.parametrize("name", keras_encoders.BUILT_IN_TESTS)
def test_builds_and_pools_to_features(name):
    encoder = keras_encoders.keras_application(f"keras:{name}", (32, 32, 3))
    features = encoder(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32"))
    assert features.shape[0] == 2 and len(features.shape) == 2
    assert np.all(np.isfinite(features))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"keras:NAME' with NAME one of .*EfficientNetB0.*"
                                         r"Received: encoder='keras:EfficientNetB9'"):
        keras_encoders.keras_application("keras:EfficientNetB9", (32, 32, 3))


def test_too_small_images_are_refused_by_name():
    with pytest.raises(ValueError, match="keras.applications.ResNet50V2 does not accept images of "
                                         r"shape \(8, 8, 3\)"):
        keras_encoders.keras_application("ResNet50V2", (8, 8, 3))


@pytest.mark.slow
@pytest.mark.parametrize("name", keras_encoders.TESTED)
def test_trains_evaluates_reloads_and_exports(name, tmp_path):
    # keras.applications need at least 32x32 inputs: the 16x16 digits are resized.
    config = TrainConfig(encoder=f"keras:{name}", model_dir=str(tmp_path / "run"), image_size=32, batch_size=16,
                         epochs=1, steps_per_epoch=2, linear_epochs=1, head_dims=(32, 16),
                         verbose=0, deterministic=False)
    results = run_lib.train(config)
    assert results["steps"] == 2 and 0.0 <= results["test_accuracy"] <= 1.0
    import supcon.losses  # noqa: F401, PLC0415  Registers the classes saved in model.keras.

    model = keras.saving.load_model(os.path.join(config.model_dir, "model.keras"), compile=False)
    images = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    served = tf.saved_model.load(os.path.join(config.model_dir, "saved_model"))
    outputs = served.signatures["serving_default"](images=tf.constant(images))
    # The same encoder weights through Keras and through the SavedModel's graph: two graphs that
    # sum convolutions in other orders, and the rounding compounds over ~50-80 layers (seen: up to
    # 5e-5 of the largest feature). Features are judged against the largest one (they span
    # 0..4e4 untrained) with 1e-3 of it: a wrong weight or a missing preprocessing step moves
    # features by their own size.
    expected = model.encoder(images, training=False).numpy()
    np.testing.assert_allclose(outputs["embedding"].numpy(), expected, rtol=0,
                               atol=1e-3 * np.abs(expected).max())
    assert outputs["probabilities"].shape == (3, 10)
