"""Every bad input to train.py: one line naming what was expected and received, nothing lost.

One table, one test. Each case runs `train.py` in a subprocess and checks that it
  * exits with status 1,
  * writes exactly the expected line(s) to stderr: no traceback, no TensorFlow start-up line,
  * leaves the files it was pointed at byte for byte as they were (an earlier run's files, a
    folder of images), and creates no run directory when it failed before claiming one.
Flag errors are answered before TensorFlow is imported (< 1 s each); data and run-directory
errors after it (a few seconds each), still before any training.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from supcon.data.sources import DIGITS_IMAGE_SIZE
from supcon.training.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )", re.M)


@dataclasses.dataclass
class Case:
    """One bad input: `args` for train.py (`{tmp}` is the case's folder), the stderr lines."""

    id: str
    args: list
    lines: list  # One regex per expected stderr line (fullmatch).
    setup: object = None  # Function `tmp -> None` preparing the case's folder.


def _png(path, value=128, size=8):
    from PIL import Image  # noqa: PLC0415

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _junk(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"not an image")


def _empty_folder(tmp):
    os.makedirs(os.path.join(tmp, "images"))


def _one_class(tmp):
    for i in range(3):
        _png(os.path.join(tmp, "images", "cat", f"{i}.png"))


def _unreadable(tmp):
    for name in ("cat", "dog"):
        for i in range(3):
            _junk(os.path.join(tmp, "images", name, f"{i}.png"))


def _a_file(tmp):
    with open(os.path.join(tmp, "file"), "w") as f:
        f.write("not a directory")


def _earlier_run(tmp, **changes):
    """An earlier run's directory: its run_config.json (the main job's, with `changes`)."""
    run = os.path.join(tmp, "run")
    os.makedirs(os.path.join(run, "checkpoints"))
    config = dict(TrainConfig(model_dir=run).to_json(), num_classes=10, image_size=DIGITS_IMAGE_SIZE,
                  **changes)
    with open(os.path.join(run, "run_config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(run, "checkpoints", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-44"\n')
    with open(os.path.join(run, "results.json"), "w") as f:
        f.write('{"test_accuracy": 0.98}\n')


def _damaged_run_config(tmp):
    _earlier_run(tmp)
    with open(os.path.join(tmp, "run", "run_config.json"), "r+") as f:
        f.truncate(40)


def _one_of(names):
    return "<" + r"\|".join(names) + ">"


RUN = ["--model_dir={tmp}/run"]
CASES = [
    # Flags: answered while parsing, before TensorFlow loads.
    Case("unknown_method", [*RUN, "--method=byol"],
         [r"train\.py: flag --method=byol: value should be one of " + _one_of(
             ["supcon", "simclr", "genscl", "ce"])]),
    Case("unknown_augmentation", [*RUN, "--augmentation=simclr"],
         [r"train\.py: flag --augmentation=simclr: value should be one of <simaugment\|.*>"]),
    Case("unknown_optimizer", [*RUN, "--optimizer=adagrad"],
         [r"train\.py: flag --optimizer=adagrad: value should be one of <lars\|sgd\|.*>"]),
    Case("unknown_schedule", [*RUN, "--lr_schedule=linear"],
         [r"train\.py: flag --lr_schedule=linear: value should be one of <cosine\|.*>"]),
    Case("unknown_strategy", [*RUN, "--strategy=horovod"],
         [r"train\.py: flag --strategy=horovod: value should be one of <auto\|.*>"]),
    Case("unknown_precision", [*RUN, "--precision=float8"],
         [r"train\.py: flag --precision=float8: value should be one of <float32\|.*>"]),
    Case("unknown_depth", [*RUN, "--depth=19"],
         [r"train\.py: flag --depth=19: value should be one of <18\|34\|50\|101\|152\|200>"]),
    Case("zero_epochs", [*RUN, "--epochs=0"],
         [r"train\.py: flag --epochs=0: 0 is not a positive integer"]),
    Case("negative_epochs", [*RUN, "--epochs=-3"],
         [r"train\.py: flag --epochs=-3: -3 is not a positive integer"]),
    Case("zero_batch_size", [*RUN, "--batch_size=0"],
         [r"train\.py: flag --batch_size=0: 0 is not a positive integer"]),
    Case("zero_temperature", [*RUN, "--temperature=0"],
         [r"train\.py: flag --temperature=0: 0\.0 is not number >= 1e-06"]),
    Case("zero_views", [*RUN, "--views=0"],
         [r"train\.py: flag --views=0: 0 is not a positive integer"]),
    Case("crop_scale_above_one", [*RUN, "--crop_min_scale=1.5"],
         [r"train\.py: flag --crop_min_scale=1\.5: 1\.5 is not a number in the range "
          r"\[0\.001, 1\.0\]"]),
    Case("not_a_number", [*RUN, "--seed=abc"],
         [r"train\.py: flag --seed=abc: invalid literal for int\(\) with base 10: 'abc'"]),
    Case("bad_head_dims", [*RUN, "--head_dims=512,x"],
         [r"train\.py: flag --head_dims=\['512', 'x'\]: --head_dims must be a comma-separated "
          r"list of positive integers, e\.g\. 512,128\."]),
    Case("warmup_not_below_epochs", [*RUN, "--epochs=3", "--warmup_epochs=3"],
         [r"train\.py: flags warmup_epochs=3\.0, epochs=3: --warmup_epochs must be smaller "
          r"than --epochs\."]),
    Case("augment_on_device_with_randaugment", [*RUN, "--augment_on=device", "--augmentation=randaugment"],
         [r"train\.py: flags .*: --augment_on=device runs the stage after the crop on the accelerator, "
          r"which exists for --augmentation=simaugment or crop_flip; expected one of those \(or "
          r"--augment_on=host\)\. Received: --augmentation=randaugment"]),
    Case("augment_on_device_with_mixup", [*RUN, "--augment_on=device", "--method=ce", "--mixup=0.5"],
         [r"train\.py: flags .*: --augment_on=device colours the views inside the training step, "
          r"after what the host does to the batch \(MixUp/CutMix, the teacher's targets\), which need "
          r"the finished views; expected --augment_on=host with them\. Received: --mixup=0\.5"]),
    Case("unknown_augment_on", [*RUN, "--augment_on=gpu"],
         [r"train\.py: flag --augment_on=gpu: value should be one of <host\|device>"]),
    Case("unknown_jit_compile", [*RUN, "--jit_compile=yes"],
         [r"train\.py: flag --jit_compile=yes: value should be one of <auto\|true\|false>"]),
    Case("mixup_with_supcon", [*RUN, "--mixup=1"],
         [r"train\.py: flags .*: --mixup/--cutmix make label distributions: use them with "
          r"--method=genscl or ce\."]),
    Case("teacher_with_supcon", [*RUN, "--teacher=/x"],
         [r"train\.py: flags .*: --teacher \(knowledge distillation\) is only used by "
          r"--method=genscl\."]),
    Case("piecewise_without_boundaries", [*RUN, "--lr_schedule=piecewise"],
         [r"train\.py: flags .*: --lr_schedule=piecewise needs --lr_boundaries .*"]),
    Case("tpu_without_tpu_strategy", [*RUN, "--tpu=local"],
         [r"train\.py: flags .*: --tpu is only used with --strategy=tpu\."]),
    Case("positives_cap_not_a_multiple_of_views", [*RUN, "--positives_cap=3"],
         [r"train\.py: flags positives_cap=3, views=2: --positives_cap must be a multiple of "
          r"--views .*"]),
    Case("malformed_encoder", [*RUN, "--encoder=efficientnet"],
         [r"train\.py: flag --encoder=efficientnet: --encoder must be resnet or keras:NAME .*"]),
    Case("unknown_flag", [*RUN, "--epoch=3"],
         [r"train\.py: Unknown command line flag 'epoch'\. Did you mean: epochs \?"]),
    Case("missing_flagfile", [*RUN, "--flagfile={tmp}/missing.flags"],
         [r"train\.py: Unable to open flagfile: \[Errno 2\] No such file or directory: "
          r"'.*missing\.flags'"]),
    Case("positional_argument", [*RUN, "cifar10"],
         [r"train\.py: train\.py takes flags only\. Received: cifar10"]),
    # The run directory, checked before TensorFlow loads.
    Case("model_dir_is_a_file", ["--model_dir={tmp}/file"],
         [r"train\.py: --model_dir must be a directory, but '.*/file' is a file\. "
          r"Received: model_dir='.*/file'"], _a_file),
    Case("model_dir_below_a_file", ["--model_dir={tmp}/file/run"],
         [r"train\.py: --model_dir cannot be created: '.*/file' is a file\. "
          r"Received: model_dir='.*/file/run'"], _a_file),
    Case("model_dir_not_writable", ["--model_dir=/proc/supcon-run"],
         [r"train\.py: --model_dir is not writable: nothing can be created in '/proc' \(.*\)\. "
          r"Received: model_dir='/proc/supcon-run'"]),
    # Data: after TensorFlow loads, before anything is written.
    Case("unknown_dataset", [*RUN, "--dataset=cifar11"],
         [r"train\.py: No data source named 'cifar11': it is neither 'digits', 'folder:PATH', "
          r"nor a TFDS data set .*Received: name='cifar11'"]),
    Case("tfds_data_missing_offline", [*RUN, "--dataset=mnist", "--data_dir={tmp}/tfds"],
         [r"train\.py: TFDS data set 'mnist' is not prepared: looked for it in .*supcon never "
          r"downloads data\..*--data_dir=DIR\. The offline default is `digits`\."]),
    Case("folder_missing", [*RUN, "--dataset=folder:{tmp}/nowhere"],
         [r"train\.py: Image folder '.*/nowhere' does not exist\. .*"]),
    Case("folder_empty", [*RUN, "--dataset=folder:{tmp}/images"],
         [r"train\.py: Image folder '.*/images' holds no class subfolder with .* files\. .*"],
         _empty_folder),
    Case("folder_one_class", [*RUN, "--dataset=folder:{tmp}/images"],
         [r"train\.py: Image folder '.*/images' has one class \('cat'\); classification needs "
          r"at least two\. .*"], _one_class),
    Case("folder_unreadable", [*RUN, "--dataset=folder:{tmp}/images"],
         [r"train\.py: .*no readable images.*"], _unreadable),
    Case("unknown_keras_encoder", [*RUN, "--encoder=keras:EfficientNetB9"],
         [r"train\.py: `encoder` must be 'resnet' or 'keras:NAME' with NAME one of .*EfficientNetB0.* "
          r"Received: encoder='keras:EfficientNetB9'"]),
    Case("keras_encoder_too_small_images", [*RUN, "--encoder=keras:ResNet50V2", "--image_size=8"],
         [r"train\.py: keras\.applications\.ResNet50V2 does not accept images of shape "
          r"\(8, 8, 3\): Input size must be at least 32x32; expected larger images \(train\.py: --image_size, "
          r"e\.g\. 32 for the 16x16 digits\)\. Received: input_shape=\(8, 8, 3\)"]),
    Case("batch_larger_than_data", [*RUN, "--batch_size=2048"],
         [r"train\.py: `batch_size` is larger than the 1437 training examples\. "
          r"Received: batch_size=2048"]),
    Case("data_dir_with_digits", [*RUN, "--data_dir={tmp}", "--batch_size=2048"],
         [r"train\.py: warning: --data_dir=.* is not used: digits is embedded in the package\.",
          r"train\.py: `batch_size` is larger than the 1437 training examples\. .*"]),
    # An earlier run in --model_dir: refused, its files untouched.
    Case("other_settings", [*RUN, "--temperature=0.2"],
         [r"train\.py: .*/run holds a run with different settings \(temperature: 0\.1 -> 0\.2\)"
          r"\. Use another --model_dir, or pass --overwrite to delete that run .*"],
         _earlier_run),
    Case("fewer_epochs", [*RUN, "--epochs=10"],
         [rf"train\.py: .*/run holds a run with different settings \(epochs: {TrainConfig().epochs} -> 10\).*"],
         _earlier_run),
    Case("damaged_run_config", [*RUN],
         [r"train\.py: .*/run/run_config\.json is damaged \(.*\), so which run .*/run holds is "
          r"unknown\. Use another --model_dir, or pass --overwrite to delete that run\. .*"],
         _damaged_run_config),
    Case("run_in_use", [*RUN],
         [r"train\.py: .*/run is in use by another training process; wait for it "
          r"to finish, or use another --model_dir\. .*"], _earlier_run),
]


def _snapshot(folder):
    """`{relative path: sha256}` of every file under `folder` (empty if it does not exist)."""
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return files


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_its_line_and_changes_nothing(case, tmp_path):
    tmp = str(tmp_path)
    if case.setup:
        case.setup(tmp)
    before = _snapshot(tmp)
    lock = None
    if case.id == "run_in_use":  # Another process (this one) holds the run directory's lock.
        lock = os.open(os.path.join(tmp, "run"), os.O_RDONLY)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        result = subprocess.run(
            [sys.executable, "train.py", *[a.format(tmp=tmp) for a in case.args]],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    finally:
        if lock is not None:
            os.close(lock)
    assert result.returncode == 1, result.stderr[-3000:]
    assert not NATIVE_LOG_LINE.search(result.stderr), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(case.lines), result.stderr[-3000:]
    for line, pattern in zip(lines, case.lines):
        assert re.fullmatch(pattern, line), f"{line!r} does not match {pattern!r}"
    assert _snapshot(tmp) == before
    assert not os.path.exists(os.path.join(tmp, "run")) or case.setup is not None or (
        "run" in before)


def test_the_table_covers_each_kind_of_input():
    assert len(CASES) >= 35


@pytest.mark.slow
def test_native_start_up_lines_are_one_flag_away(tmp_path):
    """Hidden by default; `--verbosity=0` shows them (and the traceback of an error)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    plain = subprocess.run([sys.executable, "-c", "import tensorflow as tf; "
                            "tf.config.list_physical_devices()"],
                           capture_output=True, text=True, env=env)
    args = [sys.executable, "train.py", f"--model_dir={tmp_path}/run", "--dataset=cifar11"]
    quiet = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    verbose = subprocess.run([*args, "--verbosity=0"], cwd=ROOT, capture_output=True,
                             text=True, env=env)
    assert quiet.stderr.count("\n") == 1 and not NATIVE_LOG_LINE.search(quiet.stderr)
    assert "Traceback (most recent call last)" in verbose.stderr
    if NATIVE_LOG_LINE.search(plain.stderr):  # This TensorFlow build logs at start-up here.
        assert NATIVE_LOG_LINE.search(verbose.stderr), verbose.stderr[:2000]
