"""Stage 2 (`supcon.training.linear_stage`): settings, the two official recipes' schedules, the loss,
exact reruns, and the training data it reads.

Expected schedule values are computed by hand from the recipes (google-research
`supcon/scripts/supcon_imagenet_resnet50.sh`; HobbitLong/SupContrast `main_linear.py`), the loss
from the label-smoothing formula in NumPy, never from the code under test.
"""

import keras
import numpy as np
import pytest

from supcon import data, models
from supcon.training import TrainConfig, lars, optimizers
from supcon.training import linear_stage as ls
from supcon.training.linear_stage import LinearStageSettings

CIFAR10_TRAIN, IMAGENET_TRAIN = 50_000, 1_281_167

# HobbitLong/SupContrast main_linear.py: `--batch_size 512 --learning_rate 5` (README), SGD momentum
# 0.9, x0.2 after epochs 60, 75, 90 of 100, no weight decay, no warmup, crop + flip.
HOBBITLONG = LinearStageSettings(
    epochs=100, optimizer="sgd", batch_size=512, learning_rate=2.5, momentum=0.9, weight_decay=0.0,
    warmup_epochs=0.0, lr_schedule="piecewise", lr_decay_rate=0.2, lr_boundaries=(60, 75, 90),
    label_smoothing=0.0, augmentation="crop_flip", crop_min_scale=0.2)
# google-research supcon ImageNet ResNet-50 stage 2: RMSProp, 0.05 per 256 at batch 6144, 90 epochs,
# 12 warmup epochs, x0.97 every 0.5 epoch (staircase), weight decay 1e-6, label smoothing 0.05.
GOOGLE = LinearStageSettings(
    epochs=90, optimizer="rmsprop", batch_size=6144, learning_rate=0.05, momentum=0.9, weight_decay=1e-6,
    warmup_epochs=12.0, lr_schedule="exponential", lr_decay_rate=0.97, lr_epochs_per_decay=0.5,
    label_smoothing=0.05, augmentation="autoaugment", crop_min_scale=0.08)


def _rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


# --- Settings -------------------------------------------------------------------------------------


def test_settings_from_a_train_config():
    config = TrainConfig(linear_epochs=5, linear_optimizer="rmsprop", linear_batch_size=64, linear_learning_rate=0.3,
                         linear_momentum=0.8, linear_weight_decay=1e-6, linear_warmup_epochs=1.0,
                         linear_lr_schedule="piecewise", linear_lr_decay_rate=0.5, linear_lr_boundaries=(2.0, 4.0),
                         linear_label_smoothing=0.1, linear_augmentation="crop_flip", crop_min_scale=0.3,
                         color_jitter_strength=1.0, blur="on", randaugment_layers=1, randaugment_magnitude=5.0)
    settings = LinearStageSettings.from_config(config)
    assert settings == LinearStageSettings(
        epochs=5, optimizer="rmsprop", batch_size=64, learning_rate=0.3, momentum=0.8, weight_decay=1e-6,
        warmup_epochs=1.0, lr_schedule="piecewise", lr_decay_rate=0.5, lr_epochs_per_decay=30.0,
        lr_boundaries=(2.0, 4.0), label_smoothing=0.1, augmentation="crop_flip", crop_min_scale=0.3,
        color_jitter_strength=1.0, blur="on", randaugment_layers=1, randaugment_magnitude=5.0)
    assert LinearStageSettings.from_config(config.to_json()) == settings  # run_config.json holds to_json().


def test_settings_from_an_older_run_config():
    # An older run_config.json: a few linear_* keys, lists for tuples; the rest takes TrainConfig's defaults.
    old = {"dataset": "digits", "num_classes": 10, "linear_epochs": 3, "linear_batch_size": 64,
           "linear_learning_rate": 0.5, "linear_lr_boundaries": [1, 2]}
    settings = LinearStageSettings.from_config(old)
    defaults = TrainConfig()
    assert (settings.epochs, settings.batch_size, settings.learning_rate) == (3, 64, 0.5)
    assert settings.lr_boundaries == (1.0, 2.0)
    assert settings.optimizer == defaults.linear_optimizer and settings.augmentation == defaults.linear_augmentation
    assert settings.crop_min_scale == defaults.crop_min_scale
    assert LinearStageSettings.from_config({}) == LinearStageSettings()
    assert LinearStageSettings.from_config(old, epochs=7, optimizer="sgd").epochs == 7


@pytest.mark.parametrize("config, pattern", [
    ({"linear_epochs": 3, "linear_warmup_epochs": 3}, r"`linear_warmup_epochs` must be in \[0, linear_epochs=3\)"),
    ({"linear_optimizer": "adagrad"}, r"`linear_optimizer` must be one of .*Received: linear_optimizer='adagrad'"),
    ({"linear_batch_size": 0}, r"`linear_batch_size` must be an int >= 1"),
    ({"linear_label_smoothing": 1.0}, r"`linear_label_smoothing` must be in \[0, 1\)"),
    ({"linear_lr_schedule": "piecewise"}, r"`linear_lr_boundaries` must be strictly increasing"),
    ({"linear_augmentation": "mixup"}, r"`linear_augmentation` must be one of"),
    ({"crop_min_scale": 0}, r"`crop_min_scale` must be in \(0, 1\]"),
    ({"blur": "sometimes"}, r"`blur` must be one of"),
])
def test_bad_settings_name_the_train_config_field(config, pattern):
    with pytest.raises(ValueError, match=pattern):
        LinearStageSettings.from_config(config)


def test_unknown_override():
    with pytest.raises(TypeError, match="Unknown stage-2 settings"):
        LinearStageSettings.from_config({}, linear_epochs=3)


# --- The official recipes ------------------------------------------------------------------------


def test_hobbitlong_cifar_schedule_and_optimizer():
    steps = ls.steps_per_epoch(HOBBITLONG, CIFAR10_TRAIN)
    assert steps == 97  # 50000 // 512.
    schedule = ls.linear_schedule(HOBBITLONG, steps)
    # lr 5 at batch 512 (2.5 per 256); x0.2 once epoch 60 is done, again after 75 and 90 (the steps
    # just after the boundaries: see test_piecewise_decays_at_the_first_step_of_the_epoch).
    at = [0, 60 * 97 - 1, 60 * 97 + 1, 75 * 97 - 1, 75 * 97 + 1, 90 * 97 + 1, 100 * 97 - 1]
    np.testing.assert_allclose(_rates(schedule, at), [5.0, 5.0, 1.0, 1.0, 0.2, 0.04, 0.04], rtol=1e-6)
    optimizer = ls.linear_optimizer(HOBBITLONG, steps)
    assert isinstance(optimizer, lars.LARS) and optimizer.name == "sgd"
    assert optimizer.momentum == 0.9 and optimizer.weight_decay_rate == 0.0 and not optimizer.layer_adaptation


def test_piecewise_decays_at_the_first_step_of_the_epoch():
    steps = ls.steps_per_epoch(HOBBITLONG, CIFAR10_TRAIN)
    schedule = ls.linear_schedule(HOBBITLONG, steps)
    # main_linear.py's adjust_learning_rate, per 1-based epoch: lr * 0.2 ** sum(epoch > [60, 75, 90]).
    np.testing.assert_allclose(_rates(schedule, [60 * 97 - 1, 60 * 97, 75 * 97, 90 * 97]),
                               [5.0, 1.0, 0.2, 0.04], rtol=1e-6)


def test_google_imagenet_schedule_and_optimizer():
    steps = ls.steps_per_epoch(GOOGLE, IMAGENET_TRAIN)
    assert steps == 208  # 1281167 // 6144.
    schedule = ls.linear_schedule(GOOGLE, steps)
    peak, warmup, per_decay = 0.05 * 6144 / 256, 12 * 208, 104  # 1.2; 2496 steps; 0.5 epoch.
    at = [0, warmup // 2, warmup, warmup + per_decay - 1, warmup + per_decay, warmup + 20 * per_decay]
    expected = [0.0, peak / 2, peak, peak, peak * 0.97, peak * 0.97 ** 20]
    np.testing.assert_allclose(_rates(schedule, at), expected, rtol=1e-5)
    optimizer = ls.linear_optimizer(GOOGLE, steps)
    assert isinstance(optimizer, optimizers.RMSprop)
    # TF1 RMSPropOptimizer(decay=0.9, momentum=0.9, epsilon=1e-3): Keras's rho, momentum, epsilon.
    assert (optimizer.rho, optimizer.momentum, optimizer.epsilon) == (0.9, 0.9, 1e-3)
    assert optimizer.coupled_weight_decay == 1e-6 and optimizer.weight_decay_exclusions == ()


def test_weight_decay_reaches_the_bias():
    # The official stage 2 decays the head's bias too (use_bias_weight_decay=True): one SGD step
    # with zero gradients and lr 1 moves kernel and bias alike by lr * wd * w.
    settings = LinearStageSettings(epochs=1, optimizer="sgd", batch_size=256, learning_rate=1.0, weight_decay=0.1,
                                   lr_schedule="constant")
    optimizer = ls.linear_optimizer(settings, steps_per_epoch=10)
    variables = [keras.Variable(np.ones((2,), "float32"), name=n) for n in ("kernel", "bias")]
    optimizer.apply([keras.ops.zeros((2,)), keras.ops.zeros((2,))], variables)
    for variable in variables:
        np.testing.assert_allclose(variable.numpy(), [0.9, 0.9], rtol=1e-6)


# --- The loss ------------------------------------------------------------------------------------


def _reference_loss(logits, labels, epsilon):
    """-sum_k t_k log softmax(z)_k with t = (1 - eps) one_hot + eps / K (Szegedy et al. 2016, §7)."""
    logits = np.asarray(logits, np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    targets = (1 - epsilon) * np.eye(logits.shape[-1])[labels] + epsilon / logits.shape[-1]
    return -(targets * log_p).sum(-1)


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.3])
def test_label_smoothing_follows_the_formula(epsilon):
    logits, labels = [[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], [0, 1]
    per_example = ls.smoothed_sparse_categorical_crossentropy(np.array(labels), np.array(logits, "float32"), epsilon)
    np.testing.assert_allclose(per_example, _reference_loss(logits, labels, epsilon), rtol=1e-5)
    mean = ls.SmoothedSparseCategoricalCrossentropy(label_smoothing=epsilon)(np.array(labels), np.array(logits))
    np.testing.assert_allclose(float(mean), _reference_loss(logits, labels, epsilon).mean(), rtol=1e-5)


def test_label_smoothing_changes_the_loss_by_hand():
    # z = [2, 0, 0], label 0: log p = [2, 0, 0] - log(e^2 + 2); eps = 0.3 puts 0.1 on each class and
    # 0.7 on the label: loss = log(e^2 + 2) - 0.8 * 2.
    loss = ls.smoothed_sparse_categorical_crossentropy(np.array([0]), np.array([[2.0, 0.0, 0.0]]), 0.3)
    np.testing.assert_allclose(float(loss[0]), np.log(np.e ** 2 + 2) - 1.6, rtol=1e-6)
    plain = ls.smoothed_sparse_categorical_crossentropy(np.array([0]), np.array([[2.0, 0.0, 0.0]]), 0.0)
    np.testing.assert_allclose(float(plain[0]), np.log(np.e ** 2 + 2) - 2.0, rtol=1e-6)


def test_loss_config_round_trip():
    loss = ls.SmoothedSparseCategoricalCrossentropy(label_smoothing=0.05, name="stage2")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    with pytest.raises(ValueError, match=r"Received: label_smoothing=1\.0"):
        ls.SmoothedSparseCategoricalCrossentropy(label_smoothing=1.0)


# --- Training ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_train():
    return data.load("digits", "train")


def _encoder():
    return models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(16, 16, 3))


def _train(encoder, source, seed, **settings):
    settings = LinearStageSettings(**{"epochs": 1, "batch_size": 128, "optimizer": "sgd", **settings})
    return ls.train_linear_classifier(encoder, source, settings, num_classes=10, image_size=16, seed=seed)


def test_same_seed_same_classifier(digits_train):
    """A killed and re-run stage 2 trains the same classifier: the same computation, repeated."""
    encoder = _encoder()
    first, history = _train(encoder, digits_train, seed=3, augmentation="crop_flip", label_smoothing=0.1)
    # Random ops in between (a resumed run runs fewer of them before stage 2) change nothing.
    keras.random.uniform((7,), seed=None)
    np.random.rand(5)
    second, history_again = _train(encoder, digits_train, seed=3, augmentation="crop_flip", label_smoothing=0.1)
    for a, b in zip(first.classifier_head.get_weights(), second.classifier_head.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert history == history_again and len(history["loss"]) == 1
    other, _ = _train(encoder, digits_train, seed=4, augmentation="crop_flip", label_smoothing=0.1)
    assert not np.array_equal(other.classifier_head.get_weights()[0], first.classifier_head.get_weights()[0])


def test_epochs_zero_is_refused(digits_train):
    with pytest.raises(ValueError, match="`linear_epochs` must be >= 1 to train"):
        _train(_encoder(), digits_train, seed=0, epochs=0)


@pytest.mark.parametrize("augmentation", ["none", "crop_flip", "stacked_randaugment"])
def test_augmentation_passes_through(digits_train, augmentation, monkeypatch):
    calls = []
    pipeline = data.pipeline

    def recording_pipeline(*args, **kwargs):
        calls.append(kwargs)
        return pipeline(*args, **kwargs)

    monkeypatch.setattr(data, "pipeline", recording_pipeline)
    settings = LinearStageSettings(batch_size=32, augmentation=augmentation, crop_min_scale=0.2,
                                   color_jitter_strength=1.0, blur="on", randaugment_layers=1,
                                   randaugment_magnitude=4.0)
    stream, steps = ls.linear_training_data(digits_train, settings, image_size=16, seed=5)
    images, labels = next(iter(stream))
    assert steps == 1437 // 32 and images.shape == (32, 16, 16, 3) and labels.shape == (32,)
    assert images.dtype.name == "float32" and labels.dtype.is_integer
    expected = {"views": 1, "augmentation": augmentation, "crop_scale": (0.2, 1.0), "color_jitter_strength": 1.0,
                "blur": "on", "num_ops": 1, "magnitude": 4.0, "training": True, "repeat": True, "seed": 5}
    assert {k: calls[0][k] for k in expected} == expected
    # Same seed, same labels in the same order whatever the augmentation.
    _, plain_labels = next(iter(ls.linear_training_data(
        digits_train, LinearStageSettings(batch_size=32, augmentation="none"), image_size=16, seed=5)[0]))
    np.testing.assert_array_equal(labels, plain_labels)
