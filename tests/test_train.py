"""train.py end to end: the run directory, refusing other runs, NaN stops, kill/resume, multi-worker.

Everything is tiny (ResNet-18 at 1/8 width on 16x16 digits, a few steps) to fit 2 CPU cores.
The kill/resume and multi-worker tests run `train.py` in subprocesses.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from supcon.training import NonFiniteLossError, RunDirectoryConflict, TrainConfig
from supcon.training import run as run_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(
    width_multiplier=0.125,
    image_size=16,
    head_dims=(16, 8),
    batch_size=32,
    epochs=2,
    steps_per_epoch=3,
    warmup_epochs=0.0,
    linear_epochs=1,
    linear_batch_size=128,
    verbose=0,
)
TINY_FLAGS = [
    "--width_multiplier=0.125", "--image_size=16", "--head_dims=16,8", "--batch_size=32",
    "--linear_epochs=0", "--linear_batch_size=360", "--warmup_epochs=0", "--verbose=0",
]


def _tiny(tmp_path, **overrides):
    return TrainConfig(**dict(TINY, model_dir=str(tmp_path / "run"), deterministic=False,
                              **overrides))


def test_run_directory_layout_and_conflict(tmp_path):
    config = _tiny(tmp_path)
    results = run_lib.train(config)
    d = config.model_dir
    for name in ("run_config.json", "model.keras", "classifier.keras", "results.json",
                 "checkpoints", "summaries", "saved_model"):
        assert os.path.exists(os.path.join(d, name)), name
    saved = json.load(open(os.path.join(d, "run_config.json")))
    assert saved["num_classes"] == 10 and saved["image_size"] == 16 and saved["seed"] == 0
    assert results["method"] == "supcon" and 0.0 <= results["test_accuracy"] <= 1.0
    assert json.load(open(os.path.join(d, "results.json"))) == results
    assert results["steps"] == 6
    tags = _summary_tags(os.path.join(d, "summaries"))
    assert {"epoch_loss", "epoch_learning_rate", "epoch_accuracy"} <= tags
    with pytest.raises(RunDirectoryConflict, match="temperature: 0.1 -> 0.2"):
        run_lib.train(_tiny(tmp_path, temperature=0.2))


def _summary_tags(log_dir):
    from tensorflow.core.util import event_pb2  # noqa: PLC0415

    tags = set()
    for name in os.listdir(log_dir):
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            event = event_pb2.Event.FromString(record.numpy())
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_cross_entropy_run(tmp_path):
    results = run_lib.train(_tiny(tmp_path, method="ce", epochs=1, views=1))
    assert results["method"] == "ce"
    assert not os.path.exists(os.path.join(str(tmp_path / "run"), "classifier.keras"))


def test_genscl_with_mixup_cutmix_run(tmp_path):
    results = run_lib.train(_tiny(tmp_path, method="genscl", mixup=1.0, cutmix=1.0, epochs=1))
    assert results["method"] == "genscl" and results["steps"] == 3


def test_nan_loss_stops_naming_step_and_advice(tmp_path):
    config = _tiny(tmp_path, learning_rate=1e30, warmup_epochs=0.0, checkpoint_steps=1, epochs=1)
    with pytest.raises(NonFiniteLossError, match=r"at step \d+.*lower --learning_rate.*--temperature"):
        run_lib.train(config)


def _train_command(model_dir, *extra):
    return [sys.executable, os.path.join(ROOT, "train.py"), f"--model_dir={model_dir}",
            *TINY_FLAGS, *extra]


def _final_variables(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    names = [n for n, _ in tf.train.list_variables(path)
             if "save_counter" not in n and "_CHECKPOINTABLE_OBJECT_GRAPH" not in n]
    return path, {n: reader.get_tensor(n) for n in names}


def _state_step(model_dir):
    state = os.path.join(model_dir, "checkpoints", "checkpoint")
    if not os.path.exists(state):
        return 0
    path = tf.train.latest_checkpoint(os.path.dirname(state))
    return int(path.rsplit("-", 1)[1]) if path else 0


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    # 2 epochs of 6 steps, a checkpoint every 2 steps; killed once step 8 (mid epoch 2) is saved.
    args = ["--epochs=2", "--steps_per_epoch=6", "--checkpoint_steps=2", "--seed=3"]
    reference, resumed = str(tmp_path / "reference"), str(tmp_path / "resumed")
    subprocess.run(_train_command(reference, *args), check=True, cwd=ROOT, capture_output=True)

    process = subprocess.Popen(_train_command(resumed, *args), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _state_step(resumed) < 8 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _state_step(resumed)
    assert 8 <= killed_at < 12, f"the run was not killed mid-way (newest checkpoint: {killed_at})"
    assert not os.path.exists(os.path.join(resumed, "results.json"))

    again = subprocess.run(_train_command(resumed, *args), check=True, cwd=ROOT,
                           capture_output=True, text=True)
    assert f"Resuming from step {killed_at} of 12" in again.stdout
    ref_path, ref = _final_variables(reference)
    res_path, res = _final_variables(resumed)
    assert ref_path.endswith("ckpt-12") and res_path.endswith("ckpt-12")
    assert ref.keys() == res.keys()
    for name in ref:
        np.testing.assert_array_equal(res[name], ref[name], err_msg=name)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_local_workers_agree(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    model_dir = str(tmp_path / "run")
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            _train_command(model_dir, "--strategy=multi_worker", "--epochs=1",
                           "--steps_per_epoch=2", "--checkpoint_steps=1", "--linear_epochs=1",
                           # Synchronized BN: moving statistics from the global batch, so even
                           # they agree (unsynchronized, each worker keeps its own).
                           "--synchronized_bn"),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=400)[0] for p in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    chief = json.load(open(os.path.join(model_dir, "results.json")))
    other = json.load(open(os.path.join(model_dir, "worker1", "results.json")))
    assert chief == other and chief["steps"] == 2
    import keras  # noqa: PLC0415

    import supcon.losses  # noqa: F401, PLC0415  Registers the classes saved in model.keras.
    import supcon.models  # noqa: F401, PLC0415

    for name in ("model.keras", "classifier.keras"):
        a = keras.saving.load_model(os.path.join(model_dir, name))
        b = keras.saving.load_model(os.path.join(model_dir, "worker1", name))
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_bad_flag_fails_before_any_work(tmp_path):
    start = time.monotonic()
    result = subprocess.run(_train_command(str(tmp_path / "x"), "--method=byol"), cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "--method" in result.stderr and "supcon|simclr|genscl|ce" in result.stderr
    assert not os.path.exists(tmp_path / "x")
    assert time.monotonic() - start < 60
