"""train.py end to end: the run directory, refusing other runs, NaN stops, kill/resume, multi-worker.

Everything is tiny (ResNet-18 at 1/8 width on 16x16 digits, a few steps) to fit 2 CPU cores.
The kill/resume and multi-worker tests run `train.py` in subprocesses.
"""

import json
import os
import re
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
    assert {"epoch_loss", "epoch_learning_rate", "epoch_accuracy", "augmented_views"} <= tags
    # TensorBoard's image format: [width, height, PNG]; a row per image, a column per view.
    (width, height, png), = _summary_values(os.path.join(d, "summaries"), "augmented_views")
    assert (int(width), int(height)) == (2 * 16, 8 * 16)
    assert tuple(tf.io.decode_png(png).shape) == (8 * 16, 2 * 16, 3)
    projector = os.path.join(d, "summaries", "projector")
    vectors = np.loadtxt(os.path.join(projector, "embeddings.tsv"), delimiter="\t")
    metadata = open(os.path.join(projector, "metadata.tsv")).read().splitlines()
    assert vectors.shape[0] == 360 == len(metadata) - 1 and metadata[0] == "label\tclass"
    assert "embeddings.tsv" in open(os.path.join(projector, "projector_config.pbtxt")).read()
    with pytest.raises(RunDirectoryConflict, match="temperature: 0.1 -> 0.2"):
        run_lib.train(_tiny(tmp_path, temperature=0.2))


def _summary_values(log_dir, tag):
    from tensorflow.core.util import event_pb2  # noqa: PLC0415

    values = []
    for name in sorted(n for n in os.listdir(log_dir) if n.startswith("events.")):
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            for value in event_pb2.Event.FromString(record.numpy()).summary.value:
                if value.tag == tag:
                    values.append(tf.make_ndarray(value.tensor).tolist())
    return values


def _summary_tags(log_dir):
    from tensorflow.core.util import event_pb2  # noqa: PLC0415

    tags = set()
    for name in os.listdir(log_dir):
        if not name.startswith("events."):
            continue  # The projector/ folder.
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            event = event_pb2.Event.FromString(record.numpy())
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_one_epoch_run_derives_its_warmup_and_a_larger_epochs_extends_it(tmp_path, capsys):
    # The default warmup (1 epoch) would not fit a 1-epoch run: it becomes a tenth of the run.
    config = _tiny(tmp_path, epochs=1, warmup_epochs=None, linear_epochs=0)
    assert config.warmup_epochs == pytest.approx(0.1)
    first = run_lib.train(config)
    assert first["steps"] == 3 and first["test_accuracy"] is None  # No stage 2: no accuracy.
    assert not os.path.exists(os.path.join(config.model_dir, "classifier.keras"))
    assert "stage 2 was skipped" in capsys.readouterr().out
    # The same directory with --epochs=2 goes on from step 3 (no --overwrite, nothing lost).
    extended = run_lib.train(_tiny(tmp_path, epochs=2, warmup_epochs=None))
    out = capsys.readouterr().out
    assert "Extending the run" in out and "Resuming from step 3 of 6" in out
    assert extended["steps"] == 6 and extended["test_accuracy"] is not None
    with pytest.raises(ValueError, match=r"`warmup_epochs` must be in \[0, epochs=2\)"):
        _tiny(tmp_path, epochs=2, warmup_epochs=2.0)


def test_cross_entropy_run(tmp_path):
    results = run_lib.train(_tiny(tmp_path, method="ce", epochs=1, views=1))
    assert results["method"] == "ce"
    assert not os.path.exists(os.path.join(str(tmp_path / "run"), "classifier.keras"))


def test_genscl_with_mixup_cutmix_run(tmp_path):
    results = run_lib.train(_tiny(tmp_path, method="genscl", mixup=1.0, cutmix=1.0, epochs=1))
    assert results["method"] == "genscl" and results["steps"] == 3


def test_genscl_without_mixing_trains_on_one_hot_labels(tmp_path):
    # Plain class labels become one-hot distributions (it failed on int labels before).
    results = run_lib.train(_tiny(tmp_path, method="genscl", epochs=1))
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


def _saved_weights(model_dir):
    """Everything a run ends with: its last checkpoint's variables and the two .keras models."""
    import keras  # noqa: PLC0415

    import supcon.losses  # noqa: F401, PLC0415  Registers the classes saved in model.keras.
    import supcon.models  # noqa: F401, PLC0415

    path, variables = _final_variables(model_dir)
    weights = {f"checkpoint/{n}": v for n, v in variables.items()}
    for name in ("model.keras", "classifier.keras"):
        model = keras.saving.load_model(os.path.join(model_dir, name), compile=False)
        weights.update({f"{name}/{i}": w for i, w in enumerate(model.get_weights())})
    return path, weights


def _stop_when(model_dir, ready, args, sig=signal.SIGKILL):
    """Starts train.py, sends `sig` once `ready()` holds; returns (exit code, stdout, stderr)."""
    # SIGINT as a terminal leaves it: pytest-xdist workers ignore it, children inherit SIG_IGN and
    # Python then installs no KeyboardInterrupt handler (Ctrl-C would be lost, the run would finish).
    process = subprocess.Popen(_train_command(model_dir, *args), cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "train.py ended before the point it was to be stopped at"
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


# 4 epochs of 6 steps, with stage 2 (3 epochs of 44 batches) and export.
KILL_ARGS = ["--epochs=4", "--steps_per_epoch=6", "--seed=3", "--linear_epochs=3",
             "--linear_batch_size=32"]
KILL_STEPS = 24
# One run stopped five times, each time where the previous resumption got to, then resumed to the
# end: (name, extra flags, when to stop (a function of the run directory and the step it resumed
# from), signal, where it must have stopped). Checkpoint cadence may change between resumptions.
STOP_CHAIN = [
    # At an epoch boundary: checkpoints only at epoch ends, killed once epoch 1's is saved.
    ("epoch_boundary", ["--checkpoint_steps=1000"], lambda d, start: _state_step(d) >= 6,
     signal.SIGKILL, lambda step, start: step in (6, 12)),
    # Mid-epoch: a checkpoint every 2 steps, killed once 2 more steps are saved.
    ("mid_epoch", ["--checkpoint_steps=2"], lambda d, start: _state_step(d) >= start + 2,
     signal.SIGKILL, lambda step, start: step > start and step % 6 != 0),
    # Ctrl-C mid-epoch: one line saying where the run stopped; the same command resumes.
    ("sigint", ["--checkpoint_steps=2"], lambda d, start: _state_step(d) >= start + 2,
     signal.SIGINT, lambda step, start: start < step < KILL_STEPS),
    # During stage 2: pre-training is done (model.keras written), stage 2 is not.
    ("stage_2", [], lambda d, start: os.path.exists(os.path.join(d, "model.keras")),
     signal.SIGKILL, lambda step, start: step == KILL_STEPS),
    # During export: classifier.keras is the export's first file, results.json its last.
    ("export", [], lambda d, start: os.path.exists(os.path.join(d, "classifier.keras")),
     signal.SIGKILL, lambda step, start: step == KILL_STEPS),
]


@pytest.mark.slow
def test_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGKILL at an epoch boundary, mid-epoch, in stage 2 and in export; Ctrl-C mid-epoch.

    One run is stopped at each point in turn (each resumption runs the same command and is stopped
    at the next point), then resumed to the end. Its checkpoint, model.keras and classifier.keras
    must equal an uninterrupted run's exactly: the same computation on the same machine, with op
    determinism (`deterministic=True`, the default), from the same data stream (a pure function of
    the seed and the step), so any difference at all is a resume bug, not rounding.
    """
    reference = str(tmp_path / "uninterrupted")
    done = subprocess.run(_train_command(reference, *KILL_ARGS), check=True, cwd=ROOT,
                          capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    # A quiet terminal: the run's own lines, none of TensorFlow's native start-up lines.
    assert not re.search(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )",
                         done.stderr + done.stdout, re.M), done.stderr
    assert "Test accuracy (supcon, digits)" in done.stdout
    path, expected = _saved_weights(reference)
    assert path.endswith(f"ckpt-{KILL_STEPS}")

    model_dir = str(tmp_path / "stopped")
    start = 0
    for name, extra, ready, sig, stopped_where in STOP_CHAIN:
        code, stdout, stderr = _stop_when(model_dir, lambda: ready(model_dir, start), [*KILL_ARGS, *extra], sig)
        assert not os.path.exists(os.path.join(model_dir, "results.json")), name
        if start:
            assert f"Resuming from step {start} of {KILL_STEPS}" in stdout, (name, stdout)
        stopped_at = _state_step(model_dir)
        assert stopped_where(stopped_at, start), f"{name}: not stopped where intended (newest checkpoint: {stopped_at})"
        if sig == signal.SIGINT:
            assert code == 130, stderr
            assert re.fullmatch(rf"train\.py: Interrupted at step (\d+) of {KILL_STEPS}; the checkpoint is in "
                                r"\S+\. Run the same command to resume\.\n", stderr), stderr
            assert int(re.search(r"step (\d+)", stderr).group(1)) == stopped_at
        start = stopped_at
    again = subprocess.run(_train_command(model_dir, *KILL_ARGS), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resuming from step {start} of {KILL_STEPS}" in again.stdout
    path, weights = _saved_weights(model_dir)
    assert path.endswith(f"ckpt-{KILL_STEPS}") and weights.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(weights[key], expected[key], err_msg=key)


@pytest.mark.slow
def test_queue_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    """The labelled queue, its pointer and the key encoder are in the checkpoint: exact resume.

    Batch 16 with a 64-key queue (it wraps around within the run) and key encoder momentum 0.99;
    every checkpoint variable (queue and key encoder included), model.keras and classifier.keras
    must equal the uninterrupted run's exactly (same computation, same machine, op determinism).
    """
    args = ["--batch_size=16", "--queue_size=64", "--key_encoder_momentum=0.99", "--epochs=2",
            "--steps_per_epoch=6", "--seed=5", "--linear_epochs=1", "--linear_batch_size=64",
            "--checkpoint_steps=2"]
    reference = str(tmp_path / "reference")
    subprocess.run(_train_command(reference, *args), check=True, cwd=ROOT, capture_output=True)
    _, expected = _saved_weights(reference)
    assert any("queue" in name for name in expected), sorted(expected)[:20]
    resumed = str(tmp_path / "resumed")
    _stop_when(resumed, lambda: _state_step(resumed) >= 8, args)
    stopped_at = _state_step(resumed)
    assert 8 <= stopped_at < 12
    again = subprocess.run(_train_command(resumed, *args), cwd=ROOT, capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resuming from step {stopped_at} of 12" in again.stdout
    _, weights = _saved_weights(resumed)
    assert weights.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(weights[key], expected[key], err_msg=key)


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
