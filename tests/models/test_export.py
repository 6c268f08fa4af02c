"""Tests for supcon.models.export_saved_model, checked from fresh processes."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon import models

from tests.models.conftest import IMAGE_SIZE
from tests.models.conftest import NUM_CLASSES

_BIN = pathlib.Path(sys.executable).parent
_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}

# Runs in a fresh interpreter that never imports supcon.
_CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    export_dir, data_dir = sys.argv[1], sys.argv[2]
    loaded = tf.saved_model.load(export_dir)
    images = np.load(data_dir + "/images.npy")
    outputs = {k: v.numpy() for k, v in loaded.signatures["serving_default"](images=tf.constant(images)).items()}
    np.savez(data_dir + "/outputs.npz", **outputs)
    png = tf.io.encode_png(tf.constant(images[0].astype(np.uint8)))
    jpeg = tf.io.encode_jpeg(tf.zeros([40, 30, 3], tf.uint8))
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.stack([png, jpeg]))
    np.savez(data_dir + "/from_bytes.npz", **{k: v.numpy() for k, v in from_bytes.items()})
    errors = {}
    bad_requests = {
        "rank": ("serving_default", {"images": tf.zeros([IMAGE, IMAGE, 3])}),
        "channels": ("serving_default", {"images": tf.zeros([1, IMAGE, IMAGE, 1])}),
        "range": ("serving_default", {"images": tf.fill([1, IMAGE, IMAGE, 3], 300.0)}),
        "bytes": ("serving_bytes", {"image_bytes": tf.constant([b"not an image"])}),
    }
    for name, (signature, kwargs) in bad_requests.items():
        try:
            loaded.signatures[signature](**kwargs)
            errors[name] = None
        except tf.errors.InvalidArgumentError as error:
            errors[name] = error.message
    json.dump({"supcon_imported": any(m.startswith("supcon") for m in sys.modules),
               "signatures": sorted(loaded.signatures), "errors": errors}, open(data_dir + "/report.json", "w"))
    """
).replace("IMAGE", str(IMAGE_SIZE))


@pytest.fixture
def trained(tiny_encoder, views_and_labels):
    views, labels = views_and_labels
    model = models.SupConModel(tiny_encoder, models.ProjectionHead(dims=(8,)))
    classifier = models.LinearClassifier(tiny_encoder, NUM_CLASSES)
    # Non-trivial batch-norm statistics and classifier weights.
    model(views, training=True)
    classifier.classifier_head.set_weights(
        [np.random.default_rng(0).normal(size=w.shape).astype("float32") for w in classifier.classifier_head.get_weights()]
    )
    return model, classifier, views[:, 0]


def test_export_serves_from_a_fresh_process(trained, tmp_path):
    model, classifier, images = trained
    export_dir = tmp_path / "saved_model"
    names = models.export_saved_model(model, export_dir, classifier=classifier)
    assert names == ["embedding", "logits", "probabilities", "projection"]
    np.save(tmp_path / "images.npy", images)
    subprocess.run([sys.executable, "-c", _CLIENT, str(export_dir), str(tmp_path)], check=True, env=_ENV, cwd=tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["supcon_imported"]
    assert {"serving_default", "serving_bytes"} <= set(report["signatures"])

    outputs = dict(np.load(tmp_path / "outputs.npz"))
    expected = model.predict(images, verbose=0)
    logits = keras.ops.convert_to_numpy(classifier(images))
    np.testing.assert_allclose(outputs["embedding"], expected["embedding"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["projection"], expected["projection"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["logits"], logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities"], tf.nn.softmax(logits).numpy(), rtol=1e-4, atol=1e-6)
    # A PNG of the model's input size decodes to the same pixels (uint8-rounded) ...
    from_bytes = dict(np.load(tmp_path / "from_bytes.npz"))
    rounded = model.predict(images[:1].astype(np.uint8).astype(np.float32), verbose=0)
    np.testing.assert_allclose(from_bytes["embedding"][:1], rounded["embedding"], rtol=1e-4, atol=1e-5)
    # ... and a JPEG of another size is resized to it.
    assert from_bytes["projection"].shape == (2, 8)

    errors = report["errors"]
    assert "must be a float32 batch [N, 16, 16, 3]" in errors["rank"]
    assert "must be a float32 batch [N, 16, 16, 3]" in errors["channels"]
    assert "[0, 255]" in errors["range"]
    assert "JPEG or PNG" in errors["bytes"]


def test_saved_model_cli_show_and_run(trained, tmp_path):
    model, _, images = trained
    export_dir = tmp_path / "saved_model"
    assert models.export_saved_model(model, export_dir) == ["embedding", "projection"]  # No classifier: no logits.
    show = subprocess.run(
        [str(_BIN / "saved_model_cli"), "show", "--dir", str(export_dir), "--all"],
        check=True, capture_output=True, text=True, env=_ENV,
    ).stdout
    assert "signature_def['serving_default']" in show and "signature_def['serving_bytes']" in show
    assert "shape: (-1, 16, 16, 3)" in show and "outputs['projection']" in show and "logits" not in show
    np.save(tmp_path / "images.npy", images)
    subprocess.run(
        [str(_BIN / "saved_model_cli"), "run", "--dir", str(export_dir), "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"images={tmp_path / 'images.npy'}",
         "--outdir", str(tmp_path / "cli"), "--overwrite"],
        check=True, capture_output=True, text=True, env=_ENV,
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "cli" / "projection.npy"), model.predict(images, verbose=0)["projection"], rtol=1e-4, atol=1e-5
    )


def test_export_needs_an_image_size_for_dynamic_encoders(tmp_path):
    encoder = models.resnet(18, stem="cifar", width_multiplier=0.125)  # input (None, None, 3)
    model = models.CrossEntropyModel(encoder, NUM_CLASSES)
    with pytest.raises(ValueError, match="Received: image_size=None"):
        models.export_saved_model(model, tmp_path / "a")
    with pytest.raises(TypeError, match="Received: model="):
        models.export_saved_model(encoder, tmp_path / "b")
