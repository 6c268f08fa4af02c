"""`--jit_compile` and `--augment_on`: how auto resolves, tiny runs with each, older run directories."""

import dataclasses
import types

import numpy as np
import pytest

from supcon.training import TrainConfig
from supcon.training import run as run_lib
from supcon.training import run_dir

TINY = dict(width_multiplier=0.125, image_size=16, head_dims=(16, 8), batch_size=32, epochs=1,
            steps_per_epoch=2, warmup_epochs=0.0, linear_epochs=0, verbose=0,
            deterministic=False)


@pytest.mark.parametrize("setting, replicas, device, expected", [
    ("auto", 1, "GPU", True), ("auto", 1, "TPU", True), ("auto", 1, "CPU", False),
    ("auto", 2, "GPU", False), ("auto", 8, "TPU", False), ("true", 2, "CPU", True),
    ("false", 1, "GPU", False)])
def test_jit_compile_auto_is_on_for_one_accelerator_only(setting, replicas, device, expected):
    assert run_lib.resolve_jit_compile(setting, num_replicas=replicas,
                                       device_type=device) is expected


def test_jit_compile_setting_is_checked():
    with pytest.raises(ValueError, match="Received: jit_compile='yes'"):
        run_lib.resolve_jit_compile("yes", num_replicas=1, device_type="CPU")


def _pretrain(tmp_path, **overrides):
    config = TrainConfig(**dict(TINY, model_dir=str(tmp_path / "run"), **overrides))
    run = run_lib.start(config)
    data = run_lib.build_data(run)
    model = run_lib.build_training_model(run, data)
    run_lib.claim_run_directory(run, data)
    try:
        run_lib.pretrain(run, data, model)
    finally:
        run_lib.release_run_directory(run)
    return model


def test_augment_on_device_trains_and_stays_out_of_inference(tmp_path):
    model = _pretrain(tmp_path, augment_on="device", seed=1)
    assert model.train_augmentation is not None and model.optimizer.iterations.numpy() == 2
    assert np.isfinite(model.get_weights()[0]).all()
    again = _pretrain(tmp_path / "again", augment_on="device", seed=1)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # Seeded by (seed, step, replica).
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    first = model.predict(images, verbose=0)["embedding"]
    np.testing.assert_array_equal(first, model.predict(images, verbose=0)["embedding"])


def test_jit_compile_true_trains_on_cpu(tmp_path):
    model = _pretrain(tmp_path, jit_compile="true", augment_on="device")
    assert model.jit_compile is True and model.optimizer.iterations.numpy() == 2


def test_a_run_directory_from_before_augment_on_and_jit_compile_resumes(tmp_path):
    # Its run_config.json lacks the two settings; a run with their defaults is the same run.
    config = TrainConfig(model_dir=str(tmp_path))
    data = types.SimpleNamespace(num_classes=10, image_size=16)
    stored = dict(config.to_json(), num_classes=10, image_size=16)
    del stored["augment_on"], stored["jit_compile"]
    run_dir.write_json_atomic(str(tmp_path / run_dir.RUN_CONFIG), stored)

    def claim(config):
        run = run_lib.Run(config=config, strategy=None, chief=True, out_dir=str(tmp_path), worker=0)
        try:
            return run_lib.claim_run_directory(run, data)
        finally:
            run_lib.release_run_directory(run)

    assert claim(config) == "resume"
    assert claim(dataclasses.replace(config, jit_compile="true")) == "resume"  # Host augmentation.
    with pytest.raises(run_dir.RunDirectoryConflict, match="augment_on: 'host' -> 'device'"):
        claim(dataclasses.replace(config, augment_on="device"))
