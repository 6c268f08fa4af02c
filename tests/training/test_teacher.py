"""GenSCL distillation as kiimmm/GenSCL trains it: L(labels) + kd_alpha * L(softmax(teacher logits / T))."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import supcon
from supcon.losses import genscl_loss
from supcon.training.teacher import load_teacher, teacher_distributions, with_teacher_targets

IMAGE_SIZE, NUM_CLASSES = 16, 3


def _fake_teacher(images):
    # Logits that depend on the image: [2, 0, -2] for dark images, [-2, 0, 2] for bright ones.
    bright = tf.cast(tf.reduce_mean(images, axis=[1, 2, 3]) > 127.5, tf.float32)
    first = 2.0 - 4.0 * bright
    logits = tf.stack([first, tf.zeros_like(first), -first], axis=-1)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


def _softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_teacher_distribution_is_softmax_of_logits_over_temperature():
    outputs = {"logits": tf.constant([[2.0, 0.0, -2.0]]), "probabilities": tf.constant([[0.0, 0.0, 1.0]])}
    # By hand: softmax([2, 0, -2] / T); T = 1 uses the logits, not the `probabilities` entry.
    for temperature, expected in [
        (1.0, [math.exp(2), 1.0, math.exp(-2)]),
        (2.0, [math.e, 1.0, 1 / math.e]),
        (4.0, [math.exp(0.5), 1.0, math.exp(-0.5)]),
    ]:
        expected = np.array(expected) / sum(expected)
        np.testing.assert_allclose(teacher_distributions(outputs, temperature).numpy(), [expected], rtol=1e-6)
    # Without logits, `probabilities` serve at T = 1 only (they are softmax(logits)).
    only_probabilities = {"probabilities": tf.constant([[0.25, 0.75]])}
    np.testing.assert_allclose(teacher_distributions(only_probabilities, 1.0).numpy(), [[0.25, 0.75]])
    with pytest.raises(ValueError, match="must output `logits`.*kd_temperature=2.0"):
        teacher_distributions(only_probabilities, 2.0)


def test_targets_hold_labels_and_teacher_distributions_per_view():
    views = np.zeros((2, 2, 4, 4, 3), "float32")
    views[0, 1] = 255.0  # sample 0: dark view, bright view
    labels = np.array([2, 1], "int32")
    dataset = tf.data.Dataset.from_tensors((views, labels))
    _, targets = next(iter(with_teacher_targets(dataset, _fake_teacher, num_classes=3, temperature=2.0)))
    assert sorted(targets) == ["labels", "teacher"]
    np.testing.assert_allclose(
        targets["labels"].numpy(), [[[0, 0, 1], [0, 0, 1]], [[0, 1, 0], [0, 1, 0]]], atol=0
    )
    dark, bright = _softmax([1.0, 0.0, -1.0]), _softmax([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(targets["teacher"].numpy(), [[dark, bright], [dark, dark]], rtol=1e-6)
    # Soft labels [B, C] (MixUp/CutMix per sample) are repeated over the views.
    soft = np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]], "float32")
    dataset = tf.data.Dataset.from_tensors((views, soft))
    _, targets = next(iter(with_teacher_targets(dataset, _fake_teacher, num_classes=3)))
    np.testing.assert_allclose(targets["labels"].numpy(), np.repeat(soft[:, None], 2, axis=1))


def _features_and_targets(seed=0, batch=6, views=2):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(batch, views, 8))
    z = (z / np.linalg.norm(z, axis=-1, keepdims=True)).astype("float32")
    labels = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, batch)]
    labels = np.repeat(labels[:, None], views, axis=1)
    teacher = rng.dirichlet(np.ones(NUM_CLASSES), size=(batch, views)).astype("float32")
    return z, labels, teacher


@pytest.mark.parametrize("kd_alpha", [0.0, 0.5, 1.0, 3.0])
def test_two_term_loss_equals_label_loss_plus_alpha_teacher_loss(kd_alpha):
    z, labels, teacher = _features_and_targets()
    loss = supcon.losses.GenSCLLoss(temperature=0.2, kd_alpha=kd_alpha)
    got = float(loss({"labels": labels, "teacher": teacher}, z))
    label_term = float(tf.reduce_mean(genscl_loss(z, labels, temperature=0.2)))
    teacher_term = float(tf.reduce_mean(genscl_loss(z, teacher, temperature=0.2)))
    # float32: the two terms are computed in float32 and added; rtol 1e-6 is a few ulps.
    np.testing.assert_allclose(got, label_term + kd_alpha * teacher_term, rtol=1e-6, atol=1e-6)
    if kd_alpha == 0.0:
        np.testing.assert_allclose(got, float(supcon.losses.GenSCLLoss(temperature=0.2)(labels, z)), rtol=1e-6)
    # Per sample with reduction=None.
    per_sample = supcon.losses.GenSCLLoss(temperature=0.2, kd_alpha=kd_alpha, reduction=None)(
        {"labels": labels, "teacher": teacher}, z
    )
    np.testing.assert_allclose(
        per_sample.numpy(),
        genscl_loss(z, labels, temperature=0.2).numpy() + kd_alpha * genscl_loss(z, teacher, temperature=0.2).numpy(),
        rtol=1e-6,
        atol=1e-6,
    )


def test_two_terms_differ_from_one_loss_on_mixed_targets():
    # Why two terms: GenSCL's targets are cosine similarities of label vectors, not linear in them.
    z, labels, teacher = _features_and_targets(seed=1)
    two_terms = float(tf.reduce_mean(genscl_loss(z, labels) + 1.0 * genscl_loss(z, teacher)))
    mixed = float(tf.reduce_mean(genscl_loss(z, 0.5 * labels + 0.5 * teacher)))
    assert abs(two_terms - 2.0 * mixed) > 1e-3


def _tiny_encoder():
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(images)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(images, keras.layers.GlobalAveragePooling2D()(x))


def _student(loss):
    model = supcon.models.SupConModel(_tiny_encoder(), supcon.models.ProjectionHead(dims=(16, 8)))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    return model


def test_model_step_adds_the_teacher_term():
    keras.utils.set_random_seed(0)
    views = np.random.default_rng(0).uniform(0, 255, size=(6, 2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    _, labels, teacher = _features_and_targets(seed=2)
    model = _student(supcon.losses.GenSCLLoss(temperature=0.2, kd_alpha=0.5))
    y_pred = model(views)
    got = float(model.compute_loss(y={"labels": labels, "teacher": teacher}, y_pred=y_pred))
    z = y_pred["projection"]
    expected = float(tf.reduce_mean(genscl_loss(z, labels, temperature=0.2))) + 0.5 * float(
        tf.reduce_mean(genscl_loss(z, teacher, temperature=0.2))
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="need the model compiled with `GenSCLLoss`"):
        _student(supcon.losses.SupConLoss()).compute_loss(y={"labels": labels, "teacher": teacher}, y_pred=y_pred)
    with pytest.raises(ValueError, match=r"keys 'labels'.*Received: keys=\['labels', 'teachr'\]"):
        model.compute_loss(y={"labels": labels, "teachr": teacher}, y_pred=y_pred)


def test_genscl_with_a_saved_model_teacher_trains(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    views = rng.uniform(0, 255, size=(16, 2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, 16).astype("int32")
    teacher_model = supcon.models.SupConModel(
        _tiny_encoder(), supcon.models.ProjectionHead(dims=(8,)), num_classes=NUM_CLASSES
    )
    supcon.models.export_saved_model(teacher_model, str(tmp_path / "teacher"))
    teacher = load_teacher(str(tmp_path / "teacher"))
    stream = with_teacher_targets(
        tf.data.Dataset.from_tensor_slices((views, labels)).batch(8), teacher, num_classes=NUM_CLASSES, temperature=2.0
    )
    student = _student(supcon.losses.GenSCLLoss(temperature=0.2, kd_alpha=0.5))
    before = [w.numpy().copy() for w in student.trainable_weights]
    history = student.fit(stream, epochs=2, verbose=0, shuffle=False).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][0] > 0
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, student.trainable_weights))


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="Received: teacher="):
        load_teacher(str(tmp_path))
    with pytest.raises(ValueError, match="Received: temperature=0"):
        with_teacher_targets(tf.data.Dataset.range(1), _fake_teacher, num_classes=3, temperature=0)
    with pytest.raises(ValueError, match="Received: kd_alpha=-1"):
        supcon.losses.GenSCLLoss(kd_alpha=-1)
