"""Every bad input to eval.py: one stderr line, exit code 1, and nothing already written touched.

Table-driven: each case is `(id, eval.py arguments, regex, setup)`, run as a subprocess like a
user would. The arguments name `{run}` (one tiny run trained and evaluated by train.py and
eval.py for the whole module, never modified), `{copy}` (a per-case copy of it, which `setup`
may damage) and `{tmp}` (a per-case scratch folder). Each case asserts exit code 1, exactly one
stderr line starting `eval.py: ` (no traceback, no TensorFlow start-up lines) that matches the
regex, and every file and folder under `{run}`, `{copy}` and `{tmp}` unchanged.

Most cases fail while the flags parse or before TensorFlow loads (about a second each); the
few that need the data or the model load TensorFlow first.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from supcon.training import TrainConfig

# One training run, one evaluation and ~55 eval.py processes. One xdist group: with
# `--dist loadgroup` (make test) one worker builds the module's tiny run, not each worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("eval_errors")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a user's shell gives: no GPU, and TensorFlow's log level not set (conftest sets it).
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
ENV["CUDA_VISIBLE_DEVICES"] = ""
TIMEOUT_S = 300
EVAL_ARGS = ["--corruptions=gaussian_noise", "--severities=1", "--knn_k=5", "--max_test_examples=64", "--noprogress"]


def _python(script, args):
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained and evaluated run (report in RUN/eval), shared by every case."""
    path = str(tmp_path_factory.mktemp("eval_errors") / "run")
    trained = _python("train.py", [f"--model_dir={path}", "--width_multiplier=0.125", "--image_size=16",
                                   "--head_dims=16,8", "--epochs=1", "--steps_per_epoch=2", "--linear_epochs=1",
                                   "--verbose=0"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    evaluated = _python("eval.py", [f"--model_dir={path}", *EVAL_ARGS])
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert os.path.isfile(os.path.join(path, "eval", "report.json"))
    return path


def _snapshot(*roots):
    """`{path: sha256 or 'dir'}` of everything under the roots."""
    state = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            state[folder] = "dir"
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    state[path] = hashlib.sha256(f.read()).hexdigest()
    return state


# --- Ways to damage a copy of the run (setup(copy, tmp)) -----------------------------------------


def _edit_json(relative, edit):
    def setup(copy, tmp):
        path = os.path.join(copy, relative)
        with open(path) as f:
            data = json.load(f)
        with open(path, "w") as f:
            json.dump(edit(data), f)
    return setup


def _truncate(relative, size):
    def setup(copy, tmp):
        path = os.path.join(copy, relative)
        with open(path, "rb") as f:
            head = f.read(size)
        with open(path, "wb") as f:
            f.write(head)
    return setup


def _write(relative, text):
    def setup(copy, tmp):
        with open(os.path.join(copy, relative), "w") as f:
            f.write(text)
    return setup


def _remove(relative):
    return lambda copy, tmp: os.remove(os.path.join(copy, relative))


def _scribble_inside(relative):
    """Zeros a stretch in the middle of a .keras archive: still a zip, but a member fails its CRC."""
    def setup(copy, tmp):
        path = os.path.join(copy, relative)
        assert zipfile.is_zipfile(path)
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            f.write(b"\0" * 4096)
        assert zipfile.is_zipfile(path)
    return setup


def _make_file(name):
    def setup(copy, tmp):
        with open(os.path.join(tmp, name), "w") as f:
            f.write("not a folder\n")
    return setup


def _make_dir(name):
    return lambda copy, tmp: os.makedirs(os.path.join(tmp, name))


def _two_class_folder(copy, tmp):
    from PIL import Image  # noqa: PLC0415  (matplotlib's dependency)

    for label in ("cat", "dog"):
        os.makedirs(os.path.join(tmp, "two", label))
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(os.path.join(tmp, "two", label, f"{i}.png"))


def _comparison_of_other_runs(copy, tmp):
    os.makedirs(os.path.join(tmp, "cmp"))
    with open(os.path.join(tmp, "cmp", "comparison.json"), "w") as f:
        json.dump({"runs": ["/elsewhere/a", "/elsewhere/b"]}, f)


M = "--model_dir={run}"
OUT = "--output_dir={tmp}/out"  # A fresh report folder, for cases that must get past the run's report.
CMP = "--output_dir={tmp}/cmp"

# (id, argv, regex of the one stderr line, setup or None)
CASES = [
    # Flags, refused while they parse (before TensorFlow loads).
    ("severity_above_5", [M, "--severities=7"], r"--severities.*integers 1\.\.5.*Received: '7'", None),
    ("severity_zero", [M, "--severities=0,1"], r"--severities.*integers 1\.\.5.*'0'", None),
    ("severity_not_integer", [M, "--severities=2.5"], r"--severities.*integers 1\.\.5.*'2\.5'", None),
    ("severity_word", [M, "--severities=high"], r"--severities.*integers 1\.\.5.*'high'", None),
    ("severity_repeated", [M, "--severities=1,3,1"], r"--severities.*names 1 twice", None),
    ("corruption_unknown", [M, "--corruptions=fog,rain"],
     r"--corruptions.*unknown corruption 'rain'; expected some of: gaussian_noise, .*, saturate", None),
    ("corruption_empty_name", [M, "--corruptions=fog,"], r"--corruptions.*unknown corruption ''", None),
    ("corruption_repeated", [M, "--corruptions=fog,fog"], r"--corruptions.*names fog twice", None),
    ("corruption_source_unknown", [M, "--corruption_source=web"], r"--corruption_source=web: .*auto\|tfds\|generate", None),
    ("batch_size_zero", [M, "--batch_size=0"], r"--batch_size=0: .*positive", None),
    ("batch_size_word", [M, "--batch_size=many"], r"--batch_size=many", None),
    ("knn_k_negative", [M, "--knn_k=-1"], r"--knn_k=-1: .*non-negative", None),
    ("knn_temperature_zero", [M, "--knn_temperature=0"], r"--knn_temperature=0.*", None),
    ("max_test_examples_zero", [M, "--max_test_examples=0"], r"--max_test_examples=0: .*positive", None),
    ("seed_negative", [M, "--seed=-1"], r"--seed=-1: .*non-negative", None),
    ("classifier_epochs_zero", [M, "--classifier_epochs=0"], r"--classifier_epochs=0: .*positive", None),
    ("classifier_optimizer_unknown", [M, "--classifier_optimizer=adagrad"], r"--classifier_optimizer.*lars.*rmsprop",
     None),
    ("classifier_augmentation_unknown", [M, "--classifier_augmentation=mixup"], r"--classifier_augmentation.*none",
     None),
    ("unknown_flag", [M, "--knn=5"], r"(?i)unknown command line flag 'knn'", None),
    ("no_run_given", [], r"expected --model_dir=RUN_DIR .* or --compare", None),
    ("model_dir_and_compare", [M, "--compare", "{run}", "{copy}", CMP], r"expected --model_dir=RUN_DIR .* one of",
     None),
    ("compare_without_output_dir", ["--compare", "{run}", "{copy}"], r"--compare needs --output_dir", None),
    ("compare_empty", ["--compare=", CMP], r"--compare.*expected run directories", None),
    # The run directory, before TensorFlow loads.
    ("stray_argument", [M, "extra"], r"Unexpected arguments: extra", None),
    ("severities_empty", [M, "--severities="], r"severities.* is empty but 19 corruptions.*--corruptions=", None),
    ("model_dir_missing", ["--model_dir={tmp}/nope"], r"model_dir '.*nope' does not exist", None),
    ("model_dir_is_file", ["--model_dir={tmp}/file"], r"model_dir '.*file' is a file; expected a run directory",
     _make_file("file")),
    ("model_dir_empty", ["--model_dir={tmp}/empty"], r"model_dir '.*empty' is empty; expected a run directory",
     _make_dir("empty")),
    ("model_dir_without_run", ["--model_dir={tmp}"], r"model_dir '.*' is incomplete: missing run_config\.json, "
     r"model\.keras", _make_file("notes.txt")),
    ("no_model_keras", ["--model_dir={copy}"], r"incomplete: missing model\.keras", _remove("model.keras")),
    ("no_run_config", ["--model_dir={copy}"], r"incomplete: missing run_config\.json", _remove("run_config.json")),
    ("run_config_truncated", ["--model_dir={copy}"], r"run_config\.json in model_dir .* is damaged: expected JSON",
     _truncate("run_config.json", 200)),
    ("run_config_not_object", ["--model_dir={copy}"], r"run_config\.json .* damaged: expected a JSON object, "
     r"received a list", _write("run_config.json", "[1, 2]")),
    ("run_config_no_classes", ["--model_dir={copy}"], r"run_config\.json .* expected 'num_classes' to be an int "
     r">= 2, received no such key", _edit_json("run_config.json", lambda c: {k: v for k, v in c.items()
                                                                               if k != "num_classes"})),
    ("run_config_classes_text", ["--model_dir={copy}"], r"expected 'num_classes' to be an int >= 2, received "
     r"num_classes='ten'", _edit_json("run_config.json", lambda c: dict(c, num_classes="ten"))),
    ("model_keras_truncated", ["--model_dir={copy}"], r"model\.keras in model_dir .* is damaged: expected a \.keras "
     r"zip archive, received a 1000-byte file", _truncate("model.keras", 1000)),
    ("model_keras_empty", ["--model_dir={copy}"], r"model\.keras .* damaged: .* received a 0-byte file",
     _truncate("model.keras", 0)),
    ("classifier_keras_truncated", ["--model_dir={copy}"], r"classifier\.keras in model_dir .* is damaged: expected "
     r"a \.keras zip archive", _truncate("classifier.keras", 1000)),
    ("classifier_flags_ignored", [M, "--classifier_epochs=3"], r"--classifier_epochs only applies when eval\.py "
     r"trains a classifier.*--retrain_classifier", None),
    ("ce_run_retrain", ["--model_dir={copy}", "--retrain_classifier"], r"--retrain_classifier: model_dir .* is a "
     r"cross-entropy run", _edit_json("run_config.json", lambda c: dict(c, method="ce"))),
    # The report folder: an earlier report is never replaced silently.
    ("rerun_without_corruptions", [M, "--corruptions="], r"output_dir '.*eval' already holds the report of another "
     r"evaluation \(corruptions: \[\"gaussian_noise\"\] -> none; severities: \[1\] -> none.*--overwrite", None),
    ("rerun_other_seed", [M, *EVAL_ARGS, "--seed=1"], r"another evaluation \(seed: 0 -> 1\); pass --overwrite", None),
    ("rerun_other_knn_k", [M, *EVAL_ARGS, "--dataset=digits", "--knn_k=6"], r"another evaluation \(knn_k: 5 "
     r"-> 6\)", None),
    ("report_damaged", ["--model_dir={copy}", *EVAL_ARGS], r"holds a report\.json that does not parse; pass "
     r"--overwrite", _truncate("eval/report.json", 100)),
    ("report_of_older_eval", ["--model_dir={copy}", *EVAL_ARGS], r"does not record its settings .*--overwrite",
     _edit_json("eval/report.json", lambda r: {k: v for k, v in r.items() if k != "settings"})),
    ("output_dir_is_file", [M, "--output_dir={tmp}/file"], r"output_dir '.*file' is a file; expected a folder",
     _make_file("file")),
    ("output_dir_is_run_dir", [M, "--output_dir={run}/"], r"output_dir .* is the run directory itself", None),
    ("output_dir_is_other_run", [M, "--output_dir={copy}"], r"output_dir .* is a training run directory", None),
    ("output_dir_holds_comparison", [M, CMP], r"holds a side-by-side comparison", _comparison_of_other_runs),
    # --compare (no TensorFlow at all).
    ("compare_one_run", ["--compare", "{run}", CMP], r"--compare needs at least 2 run directories", None),
    ("compare_same_run_twice", ["--compare", "{run}", "{run}/", CMP], r"--compare names the same run twice", None),
    ("compare_same_run_comma", ["--compare={run},{run}", CMP], r"--compare names the same run twice", None),
    ("compare_run_missing", ["--compare", "{run}", "{tmp}/nope", CMP], r"--compare: '.*nope' does not exist", None),
    ("compare_not_evaluated", ["--compare", "{run}", "{copy}", CMP], r"No evaluation report in '.*copy'.*eval\.py "
     r"--model_dir=", lambda copy, tmp: shutil.rmtree(os.path.join(copy, "eval"))),
    ("compare_report_damaged", ["--compare", "{run}", "{copy}", CMP], r"--compare: the report '.*report\.json' is "
     r"damaged", _truncate("eval/report.json", 100)),
    ("compare_output_is_file", ["--compare", "{run}", "{copy}", "--output_dir={tmp}/file"], r"'.*file' is a file; "
     r"expected a folder", _make_file("file")),
    ("compare_output_is_report", ["--compare", "{run}", "{copy}", "--output_dir={run}/eval"], r"holds an evaluation "
     r"report whose plots the comparison would replace", None),
    ("compare_output_has_other", ["--compare", "{run}", "{copy}", CMP], r"already holds a comparison of other runs"
     r".*--overwrite", _comparison_of_other_runs),
    ("compare_with_eval_flags", ["--compare", "{run}", "{copy}", CMP, "--seed=1", "--knn_k=3"], r"--seed, --knn_k do "
     r"not apply to --compare", None),
    # Data and model files, found after TensorFlow loads (still before any work).
    ("dataset_unknown", [M, OUT, "--dataset=no_such_dataset_xyz"], r"(?i)no_such_dataset_xyz", None),
    ("dataset_not_prepared", [M, OUT, "--dataset=cifar10", "--data_dir={tmp}/tfds"],
     r"(?i)cifar10.*not prepared.*--data_dir", None),
    ("dataset_other_class_count", [M, OUT, "--dataset=folder:{tmp}/two"], r"trained for 10 classes but data set "
     r"'folder:.*two' has 2", _two_class_folder),
    ("corruption_source_tfds_missing", [M, OUT, "--corruption_source=tfds"], r"--corruption_source=tfds: data set "
     r"'digits' has no prepared corrupted sets", None),
    ("model_keras_damaged_inside", ["--model_dir={copy}", OUT], r"model\.keras in model_dir .* is damaged or not a "
     r"supcon model: could not load it \(BadZipFile", _scribble_inside("model.keras")),
    ("classifier_keras_damaged_inside", ["--model_dir={copy}", OUT], r"classifier\.keras in model_dir .* is damaged "
     r"or not a supcon model", _scribble_inside("classifier.keras")),
    ("classifier_settings_invalid", ["--model_dir={copy}", OUT, "--retrain_classifier", "--classifier_epochs=1"],
     r"classifier's settings for model_dir .* with --classifier_epochs\) are not valid: `linear_warmup_epochs` must "
     r"be in \[0, linear_epochs=1\)", _edit_json("run_config.json", lambda c: dict(c, linear_warmup_epochs=2.0))),
]
NATIVE_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )", re.MULTILINE)


@pytest.mark.parametrize("argv, pattern, setup", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(run, tmp_path, argv, pattern, setup):
    copy, tmp = str(tmp_path / "copy"), str(tmp_path / "tmp")
    shutil.copytree(run, copy)
    os.makedirs(tmp)
    if setup:
        setup(copy, tmp)
    argv = [a.format(run=run, copy=copy, tmp=tmp) for a in argv]
    before = _snapshot(run, copy, tmp)

    result = _python("eval.py", argv)

    stderr = result.stderr
    assert result.returncode == 1, (result.returncode, stderr[-3000:])
    assert "Traceback" not in stderr and not NATIVE_LOG_LINE.search(stderr), stderr[-3000:]
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr[-3000:]
    assert stderr.startswith("eval.py: "), stderr
    assert re.search(pattern, stderr), (pattern, stderr)
    assert _snapshot(run, copy, tmp) == before, "a refused run changed files it was pointed at"


def test_run_without_stage_2_overwrite_and_rerun(run, tmp_path):
    """A run trained with --linear_epochs=0 gets a classifier trained by eval.py (the default
    linear_epochs, not 0);
    --overwrite replaces a report of other settings (its stale plots too); the same settings again
    replace the report without --overwrite; --max_test_examples above the test split is said."""
    copy = str(tmp_path / "stage1_only")
    shutil.copytree(run, copy)
    os.remove(os.path.join(copy, "classifier.keras"))
    _edit_json("run_config.json", lambda c: dict(c, linear_epochs=0))(copy, None)
    _edit_json("results.json", lambda r: dict(r, test_accuracy=None))(copy, None)
    args = [f"--model_dir={copy}", "--corruptions=", "--knn_k=0", "--max_test_examples=5000", "--noprogress"]

    for extra in (["--overwrite"], []):
        result = _python("eval.py", args + extra)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "(replaced the earlier report)" in result.stdout
        assert "Note: --max_test_examples=5000 exceeds the test split of 'digits'; evaluated all 360" in result.stdout
        out = os.path.join(copy, "eval")
        assert sorted(os.listdir(out)) == ["classifier.keras", "reliability_diagram.png", "report.json", "report.md"]
        with open(os.path.join(out, "report.json")) as f:
            report = json.load(f)
        assert report["classifier"]["epochs"] == TrainConfig().linear_epochs and report["corruptions"] is None
        assert report["clean"]["num_examples"] == 360 and report["settings"]["corruptions"] == []
