"""Tests for the memory queue of SupConModel (`queue_size > 0`) and supcon.models.momentum_queue.

Expected values come from NumPy: Eq. 2 of He et al. 2020 (arXiv 1911.05722) for the key
encoder, a FIFO written out by hand for the queue, and Khosla et al. 2020 Eq. 2 with the
queue's keys joined to the contrast set for the loss.
"""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

import supcon.losses
from supcon import models
from supcon.models import momentum_queue as momentum_queue_lib
from supcon.models.momentum_queue import NO_LABEL
from supcon.models.momentum_queue import MomentumQueue

from tests.models.conftest import IMAGE_SIZE
from tests.models.conftest import NUM_CLASSES
from tests.models.conftest import make_tiny_encoder

# Two float32 ulps: m * key and (1 - m) * query are rounded, then their sum (an FMA
# would round once less).
EMA_RTOL = 2.0**-22
# A NumPy float64 reference against TF's float32 loss.
LOSS_RTOL = 1e-5


def _views(seed, batch=4):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(batch, 2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")


def _model(queue_size=16, momentum=0.9, encoder=None, **kwargs):
    keras.utils.set_random_seed(0)
    encoder = encoder or make_tiny_encoder()
    return models.SupConModel(
        encoder, models.ProjectionHead(dims=(32, 8)), queue_size=queue_size, key_encoder_momentum=momentum, **kwargs
    )


def _sgd():
    return keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)


def _numpy_supcon_with_keys(projections, labels, keys, key_labels, valid, temperature):
    """Khosla et al. Eq. 2 (L_out) with valid keys joined to every anchor's A(i), never as anchors.

    projections `[B, V, D]`, labels `[B]`, keys `[K, D]`, key_labels `[K]`, valid bool `[K]`.
    Returns the mean over samples of the mean over their views.
    """
    batch, views, _ = projections.shape
    z = projections.astype(np.float64).reshape(batch * views, -1)
    ids = np.repeat(labels, views)
    contrast = np.concatenate([z, keys[valid].astype(np.float64)])
    contrast_ids = np.concatenate([ids, key_labels[valid]])
    losses = np.zeros(batch * views)
    for i in range(batch * views):
        others = np.arange(len(contrast)) != i
        logits = contrast @ z[i] / temperature
        log_denominator = np.log(np.sum(np.exp(logits[others])))
        positives = others & (contrast_ids == ids[i])
        losses[i] = -np.mean(logits[positives] - log_denominator)
    return losses.reshape(batch, views).mean(axis=1).mean()


# --- The key encoder: Eq. 2 on every weight ---------------------------------------------


def test_ema_update_on_hand_values_batch_norm_statistics_included():
    encoder = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, name="dense"), keras.layers.BatchNormalization(name="bn")]
    )
    head = keras.layers.Dense(3, name="head")
    head.build((None, 2))
    queue = MomentumQueue(encoder, head, queue_size=4, momentum=0.9)
    query = encoder.weights + head.weights
    key = queue.key_encoder.weights + queue.key_head.weights
    assert [w.path.split("/")[-1] for w in key] == [
        "kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "kernel", "bias"
    ]
    # The copies start equal, and gradients never reach them.
    for k, q in zip(key, query):
        np.testing.assert_array_equal(k.numpy(), q.numpy())
    assert queue.trainable_weights == [] and not queue.key_encoder.trainable
    rng = np.random.default_rng(0)
    key_values = [rng.normal(size=w.shape).astype("float32") for w in key]
    query_values = [rng.normal(size=w.shape).astype("float32") for w in query]
    for variable, value in zip(key + query, key_values + query_values):
        variable.assign(np.abs(value) if "variance" in variable.path else value)
    key_values = [w.numpy() for w in key]
    query_values = [w.numpy() for w in query]

    queue.update_keys(encoder, head)

    for variable, k, q in zip(key, key_values, query_values):
        expected = np.float32(0.9) * k + np.float32(1.0 - 0.9) * q
        np.testing.assert_allclose(variable.numpy(), expected, rtol=EMA_RTOL, atol=0, err_msg=variable.path)
    for variable, q in zip(query, query_values):  # The query side is only read.
        np.testing.assert_array_equal(variable.numpy(), q)


def test_fit_step_moves_keys_by_eq_2_and_stays_off_the_optimizer(views_and_labels):
    views, labels = views_and_labels
    model = _model(momentum=0.9)
    model.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss())
    query = model.encoder.weights + model.projection_head.weights
    key = model.momentum_queue.key_encoder.weights + model.momentum_queue.key_head.weights
    assert len(model.trainable_weights) == len(model.encoder.trainable_weights) + len(
        model.projection_head.trainable_weights
    )
    before = [w.numpy() for w in query]
    model.train_on_batch(views[:4], labels[:4])
    after = [w.numpy() for w in query]
    moved = 0
    for variable, q0, q1 in zip(key, before, after):
        moved += not np.array_equal(q0, q1)
        expected = np.float32(0.9) * q0 + np.float32(1.0 - 0.9) * q1
        np.testing.assert_allclose(variable.numpy(), expected, rtol=EMA_RTOL, atol=1e-12, err_msg=variable.path)
    # Every query weight moved, batch-norm moving statistics included (training-mode forward).
    assert moved == len(query)
    assert len(model.optimizer.variables) == 1 + 1 + len(model.trainable_weights)  # iterations, lr, momenta


# --- The queue: FIFO, labels, validity -----------------------------------------------------


def _bare_queue(queue_size, label_dim=None):
    encoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    return MomentumQueue(encoder, keras.layers.Identity(), queue_size=queue_size, label_dim=label_dim)


def _keys(first, n):
    return np.stack([np.arange(first, first + n), -np.arange(first, first + n)], axis=1).astype("float32")


def test_fifo_order_wrap_around_and_validity():
    queue = _bare_queue(5)
    features, labels, valid = queue.contents()
    assert not np.any(valid.numpy()) and labels.dtype == tf.int32 and features.shape == (5, 2)

    queue.enqueue(_keys(0, 3), np.array([10, 11, 12]))
    features, labels, valid = (t.numpy() for t in queue.contents())
    np.testing.assert_array_equal(features[:3], _keys(0, 3))
    np.testing.assert_array_equal(labels[:3], [10, 11, 12])
    np.testing.assert_array_equal(valid, [True, True, True, False, False])
    assert int(queue.pointer.numpy()) == 3 and int(queue.count.numpy()) == 3

    # Keys 3, 4, 5 go to slots 3, 4 and (wrapping) 0, overwriting the oldest key (0).
    queue.enqueue(_keys(3, 3), np.array([13, 14, 15]))
    features, labels, valid = (t.numpy() for t in queue.contents())
    np.testing.assert_array_equal(labels, [15, 11, 12, 13, 14])
    np.testing.assert_array_equal(features, _keys(0, 6)[[5, 1, 2, 3, 4]])
    assert valid.all() and int(queue.pointer.numpy()) == 1 and int(queue.count.numpy()) == 5

    # More keys than slots: as if written one by one, only the last 5 (8..12) stay.
    queue.enqueue(_keys(6, 7), np.arange(16, 23))
    features, labels, _ = (t.numpy() for t in queue.contents())
    # Key j of 7 goes to slot (1 + j) % 5: keys 8..12 end in slots 3, 4, 0, 1, 2.
    np.testing.assert_array_equal(labels, [20, 21, 22, 18, 19])
    np.testing.assert_array_equal(features, _keys(6, 7)[[4, 5, 6, 2, 3]])
    assert int(queue.pointer.numpy()) == (1 + 7) % 5


def test_distribution_labels_and_teacher_validity():
    queue = _bare_queue(4, label_dim=3)
    first = np.array([[1.0, 0.0, 0.0], [0.2, 0.8, 0.0]], "float32")
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    queue.enqueue(_keys(0, 2), first, teacher)
    queue.enqueue(_keys(2, 1), first[:1])  # No teacher: its slot is left out of the teacher term.
    _, labels, valid = (t.numpy() for t in queue.contents())
    np.testing.assert_array_equal(labels[:3], np.concatenate([first, first[:1]]))
    np.testing.assert_array_equal(valid, [True, True, True, False])
    teacher_rows, teacher_valid = (t.numpy() for t in queue.teacher_contents())
    np.testing.assert_array_equal(teacher_rows[:2], teacher)
    np.testing.assert_array_equal(teacher_valid, [True, True, False, False])
    # Overwriting a slot that had a teacher, without one, clears it.
    queue.enqueue(_keys(3, 2), first)
    teacher_rows, teacher_valid = (t.numpy() for t in queue.teacher_contents())
    np.testing.assert_array_equal(teacher_valid, [False, True, False, False])
    np.testing.assert_array_equal(teacher_rows[0], [0.0, 0.0, 0.0])


# --- The step: loss against earlier keys only, then enqueue ---------------------------------


def test_each_step_contrasts_the_batch_with_earlier_keys_only():
    model = _model(queue_size=12)
    loss_fn = supcon.losses.SupConLoss(temperature=0.1)
    model.compile(optimizer=_sgd(), loss=loss_fn)
    queue = model.momentum_queue
    batches = [(_views(step), np.array([0, 1, 2, 0]) + step % 2, step) for step in range(3)]
    written = []  # (keys, labels) per step, as the key encoder gives them right after the step.
    for views, labels, step in batches:
        keys_before, labels_before, valid_before = (t.numpy() for t in queue.contents())
        # The queue holds the keys of the earlier steps only (none at the first step).
        assert valid_before.sum() == min(8 * step, 12)
        if step == 0:
            assert not valid_before.any()
        # The loss the step computes, from the weights before the step ...
        snapshot = model.get_weights()
        projections = model(views, training=True)["projection"].numpy()
        expected = _numpy_supcon_with_keys(projections, labels, keys_before, labels_before, valid_before, 0.1)
        library = loss_fn.with_contrast(labels, projections, keys_before, labels_before, valid_before)
        assert float(library) == pytest.approx(expected, rel=LOSS_RTOL)
        if step == 0:  # No valid key: the plain in-batch loss.
            assert float(loss_fn(labels, projections)) == pytest.approx(expected, rel=LOSS_RTOL)
        model.set_weights(snapshot)
        # ... is the loss `fit` reports for it.
        model.reset_metrics()
        logs = model.train_on_batch(views, labels, return_dict=True)
        assert logs["loss"] == pytest.approx(expected, rel=LOSS_RTOL)
        # After the step: this batch's keys (every view, sample-major) with their labels.
        keys_after, labels_after, _ = (t.numpy() for t in queue.contents())
        new_keys = queue(views.reshape((-1, IMAGE_SIZE, IMAGE_SIZE, 3))).numpy()
        written.append((new_keys, np.repeat(labels, 2)))
        slots = (8 * step + np.arange(8)) % 12
        np.testing.assert_allclose(keys_after[slots], new_keys, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(labels_after[slots], np.repeat(labels, 2))
    # 24 keys through 12 slots: step 1 wrote slots 8..11 and (wrapping) 0..3, step 2 slots 4..11,
    # so the oldest left are step 1's last 4 keys, in slots 0..3.
    np.testing.assert_allclose(keys_after[:4], written[1][0][4:], rtol=1e-6, atol=1e-7)
    assert np.allclose(np.linalg.norm(keys_after, axis=1), 1.0, atol=1e-6)  # L2-normalized by the head.


def test_simclr_and_unlabelled_supcon_keys_are_negatives():
    views = _views(0)
    model = _model(queue_size=8)
    model.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss())
    model.fit(tf.data.Dataset.from_tensor_slices(views).batch(4), epochs=2, verbose=0)
    keys, labels, valid = (t.numpy() for t in model.momentum_queue.contents())
    assert valid.all() and np.all(labels == NO_LABEL)
    # Without labels every sample is its own class (ids >= 0), so every key is a negative.
    projections = model(views, training=True)["projection"].numpy()
    own = np.arange(4)
    expected = _numpy_supcon_with_keys(projections, own, keys, labels, valid, supcon.losses.PAPER_TEMPERATURE)
    loss = model.compute_loss(y=None, y_pred={"projection": projections})
    assert float(loss) == pytest.approx(expected, rel=LOSS_RTOL)
    simclr = _model(queue_size=8)
    simclr.compile(optimizer=_sgd(), loss=supcon.losses.SimCLRLoss())
    history = simclr.fit(views, np.zeros(4, "int32"), batch_size=4, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert np.all(simclr.momentum_queue.labels.numpy() == NO_LABEL)


def test_genscl_queue_keeps_distributions_and_teacher():
    rng = np.random.default_rng(0)
    views = _views(0)
    labels = rng.dirichlet(np.ones(NUM_CLASSES), size=(4, 2)).astype("float32")
    teacher = rng.dirichlet(np.ones(NUM_CLASSES), size=(4, 2)).astype("float32")
    targets = {"labels": labels, "teacher": teacher}
    model = _model(queue_size=8, num_classes=NUM_CLASSES, queue_label_dim=NUM_CLASSES)
    loss_fn = supcon.losses.GenSCLLoss(kd_alpha=0.5)
    model.compile(optimizer=_sgd(), loss=loss_fn)
    model.train_on_batch(views, targets)
    keys, queued, valid = (t.numpy() for t in model.momentum_queue.contents())
    queued_teacher, teacher_valid = (t.numpy() for t in model.momentum_queue.teacher_contents())
    np.testing.assert_array_equal(queued, labels.reshape(8, NUM_CLASSES))
    np.testing.assert_array_equal(queued_teacher, teacher.reshape(8, NUM_CLASSES))
    assert valid.all() and teacher_valid.all()
    # The step's contrastive loss: L(labels) + kd_alpha * L(teacher), each with the keys' own targets.
    y_pred = model(views, training=True)
    projections = y_pred["projection"]
    expected = float(loss_fn.with_contrast(labels, projections, keys, queued, valid)) + 0.5 * float(
        loss_fn.with_contrast(teacher, projections, keys, queued_teacher, valid)
    )
    logits = y_pred["logits"].numpy().reshape(-1, NUM_CLASSES)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected += -np.mean(np.sum(labels.reshape(-1, NUM_CLASSES) * log_p, axis=-1))  # The online classifier.
    assert float(model.compute_loss(y=targets, y_pred=y_pred)) == pytest.approx(expected, rel=LOSS_RTOL)
    history = model.fit(views, targets, batch_size=4, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))


# --- Distribution, checkpoints, saving -----------------------------------------------------


def _synchronized_bn_encoder():
    """The tiny encoder with batch statistics over the global batch, so 2 replicas = 1 device."""
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(images)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(synchronized=True)(x)
    x = keras.layers.ReLU()(x)
    return keras.Model(images, keras.layers.GlobalAveragePooling2D()(x))


def test_two_replicas_give_the_single_device_queue_and_weights(two_replica_strategy):
    rng = np.random.default_rng(0)
    views = rng.uniform(0, 255, size=(16, 2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=16).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((views, labels)).batch(8)
    single = _model(queue_size=12, encoder=_synchronized_bn_encoder())
    single.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss())
    with two_replica_strategy.scope():
        mirrored = _model(queue_size=12, encoder=_synchronized_bn_encoder())
        mirrored.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss())
    mirrored.set_weights(single.get_weights())
    single_history = single.fit(dataset, epochs=1, verbose=0).history
    mirrored_history = mirrored.fit(dataset, epochs=1, verbose=0).history
    assert mirrored_history["loss"][0] == pytest.approx(single_history["loss"][0], rel=1e-5)
    # Two steps of 8 samples x 2 views: 32 keys through 12 slots, the same on both replicas.
    queue = mirrored.momentum_queue
    assert int(queue.count.numpy()) == 12 and int(queue.pointer.numpy()) == 32 % 12
    for replica_value in queue.features.value.values:
        np.testing.assert_array_equal(replica_value.numpy(), queue.features.value.values[0].numpy())
    # float32 sums in another order (gradients all-reduced over 2 halves of the batch).
    for expected, actual, variable in zip(single.get_weights(), mirrored.get_weights(), mirrored.weights):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=variable.path)


def test_checkpoint_resume_continues_exactly(tmp_path):
    rng = np.random.default_rng(0)
    views = rng.uniform(0, 255, size=(16, 2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=16).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((views, labels)).batch(4)  # 4 steps, 8 keys each.

    def build():
        model = _model(queue_size=12, num_classes=NUM_CLASSES)
        model.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss())
        model.optimizer.build(model.trainable_variables)
        return model

    uninterrupted = build()
    uninterrupted.fit(dataset, epochs=1, verbose=0)

    first = build()
    first.fit(dataset.take(2), epochs=1, verbose=0)
    path = tf.train.Checkpoint(model=first, optimizer=first.optimizer).write(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path)]
    # Every weight of the model (queue and key copies included) and the optimizer's state.
    assert len(names) - 1 == len(first.weights) + len(first.optimizer.variables)
    resumed = build()
    resumed.set_weights([np.zeros_like(w) for w in resumed.get_weights()])  # Nothing left from the init.
    tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer).read(path).assert_existing_objects_matched()
    assert int(resumed.momentum_queue.count.numpy()) == 12 and int(resumed.momentum_queue.pointer.numpy()) == 4
    resumed.fit(dataset.skip(2), epochs=1, verbose=0)
    # Same computations on the same machine: bit for bit.
    for expected, actual, variable in zip(uninterrupted.get_weights(), resumed.get_weights(), resumed.weights):
        np.testing.assert_array_equal(actual, expected, err_msg=variable.path)


def test_config_round_trip_and_saved_model_keeps_the_queue(views_and_labels, tmp_path):
    views, labels = views_and_labels
    model = _model(queue_size=10, momentum=0.99)
    model.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss())
    model.fit(views, labels, batch_size=4, epochs=1, verbose=0)
    config = model.get_config()
    assert (config["queue_size"], config["key_encoder_momentum"], config["queue_label_dim"]) == (10, 0.99, None)
    assert models.SupConModel.from_config(config).get_config() == model.get_config()
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert restored.momentum_queue.queue_size == 10 and restored.key_encoder_momentum == 0.99
    # load_model restores the queue (contents, pointer, count) and the key weights as saved.
    for expected, actual in zip(model.momentum_queue.weights, restored.momentum_queue.weights):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    assert int(restored.momentum_queue.count.numpy()) == 10
    np.testing.assert_array_equal(
        restored.predict(views[:, 0], verbose=0)["projection"], model.predict(views[:, 0], verbose=0)["projection"]
    )
    history = restored.fit(views, labels, batch_size=4, epochs=1, verbose=0).history  # Keeps training.
    assert np.isfinite(history["loss"][0])


def test_queue_size_zero_builds_no_key_encoder(tiny_encoder):
    model = models.SupConModel(tiny_encoder, models.ProjectionHead(dims=(32, 8)))
    assert model.momentum_queue is None and model.queue_size == 0
    assert len(model.weights) == len(tiny_encoder.weights) + len(model.projection_head.weights)
    assert model.get_config()["queue_size"] == 0


def test_mixed_precision_keys_are_float32(views_and_labels, restore_policy):
    keras.config.set_dtype_policy("mixed_float16")
    views, labels = views_and_labels
    model = _model(queue_size=8)
    model.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    queue = model.momentum_queue
    assert queue.key_encoder.layers[2].compute_dtype == "float16"
    assert all(w.dtype == "float32" for w in queue.weights if w.dtype != "int32")
    assert queue(views[:, 0]).dtype == "float32"
    history = model.fit(views, labels, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and bool(np.all(queue.contents()[2]))


def test_invalid_arguments(tiny_encoder):
    head = models.ProjectionHead(dims=(8,))
    for value in (-1, 2.0, True, "8"):
        with pytest.raises(ValueError, match=f"Received: queue_size={value!r}"):
            models.SupConModel(tiny_encoder, head, queue_size=value)
    for value in (1.0, -0.1, True, None):
        with pytest.raises(ValueError, match=f"Received: key_encoder_momentum={value!r}"):
            models.SupConModel(tiny_encoder, head, queue_size=4, key_encoder_momentum=value)
    with pytest.raises(ValueError, match="Received: queue_label_dim=3, queue_size=0"):
        models.SupConModel(tiny_encoder, head, queue_label_dim=3)
    with pytest.raises(ValueError, match="Received: queue_label_dim=0"):
        models.SupConModel(tiny_encoder, head, queue_size=4, queue_label_dim=0)
    # The loss is checked when `fit` starts (before any step) and in `compute_loss`.
    views = np.zeros((2, 2, IMAGE_SIZE, IMAGE_SIZE, 3), "float32")
    model = models.SupConModel(tiny_encoder, head, queue_size=4)
    model.compile(optimizer="sgd", loss=keras.losses.MeanSquaredError())
    with pytest.raises(ValueError, match="SupConLoss, SimCLRLoss or GenSCLLoss. Received: loss="):
        model.fit(views, np.array([0, 1]), verbose=0)
    model.compile(optimizer="sgd", loss=supcon.losses.GenSCLLoss())
    with pytest.raises(ValueError, match="Received: queue_label_dim=None"):
        model.fit(views, np.eye(2, dtype="float32"), verbose=0)
    with_dim = models.SupConModel(tiny_encoder, head, queue_size=4, queue_label_dim=3)
    with_dim.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    with pytest.raises(ValueError, match="Received: queue_label_dim=3"):
        with_dim.compute_loss(y=np.array([0, 1]), y_pred=with_dim(views))
    model.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    with pytest.raises(ValueError, match="`sample_weight` is not supported with a queue"):
        model.compute_loss(y=np.array([0, 1]), y_pred=model(views), sample_weight=np.ones(2, "float32"))


def test_docstring_examples():
    result = doctest.testmod(momentum_queue_lib, extraglobs={"keras": keras}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
