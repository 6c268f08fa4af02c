"""eval.py end to end on tiny run directories: report files, --compare, bad inputs."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import flags

import eval as eval_main
from supcon import console, data, evaluation, models
from supcon import flags as supcon_flags
from supcon.training import RunDirectoryError, TrainConfig, save_run
from supcon.training import linear_stage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(corruptions=["gaussian_noise", "fog"], severities=[1, 5], max_test_examples=16, knn_k=20,
             batch_size=16, progress=False)


def _write_run(path, method, num_classes=10, **linear):
    """A run directory as `supcon.training.save_run` writes it for a model trained in Python."""
    encoder = models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(32, 32, 3))
    if method == "ce":
        model = models.CrossEntropyModel(encoder, num_classes)
    else:
        model = models.SupConModel(encoder, models.ProjectionHead(dims=(16, 8)))
    # Like an older run_config.json: of the linear_* settings only epochs and batch size.
    return save_run(str(path), model, dataset="digits", num_classes=num_classes, seed=0,
                    **{"linear_epochs": 1, "linear_batch_size": 128, **linear})


def test_save_run_writes_what_eval_reads(tmp_path):
    path = _write_run(tmp_path / "run", "ce", num_classes=3)
    with open(os.path.join(path, "run_config.json")) as f:
        config = json.load(f)
    assert {k: config[k] for k in ("dataset", "num_classes", "image_size", "method")} == {
        "dataset": "digits", "num_classes": 3, "image_size": 32, "method": "ce"}
    model = keras.saving.load_model(os.path.join(path, "model.keras"), compile=False)
    with pytest.raises(RunDirectoryError, match=r"already holds a run \(run_config.json\); expected a new folder"):
        save_run(path, model, dataset="digits")
    supcon_model = models.SupConModel(model.encoder, models.ProjectionHead(dims=(8,)))
    with pytest.raises(ValueError, match=r"number of classes is unknown.*Received: num_classes=None"):
        save_run(str(tmp_path / "other"), supcon_model, dataset="digits")
    assert not os.path.exists(tmp_path / "other")
    save_run(path, supcon_model, dataset="digits", num_classes=3, overwrite=True)
    with open(os.path.join(path, "run_config.json")) as f:
        assert json.load(f)["method"] == "supcon"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"supcon": _write_run(root / "supcon", "supcon"), "ce": _write_run(root / "ce", "ce")}


@pytest.fixture(scope="module")
def evaluated(runs):
    return {name: evaluation.evaluate_run(path, **SMALL) for name, path in runs.items()}


def test_report_files_for_a_tiny_model(runs, evaluated):
    for name, path in runs.items():
        out = os.path.join(path, "eval")
        for file in ("report.json", "report.md", "reliability_diagram.png", "accuracy_vs_severity.png",
                     "corruption_errors.png"):
            assert os.path.getsize(os.path.join(out, file)) > 0, (name, file)
        report = evaluated[name]
        assert 0.0 <= report["clean"]["top1"] <= report["clean"]["top5"] <= 1.0
        assert report["clean"]["num_examples"] == 16
        assert 0.0 <= report["clean"]["ece"] <= 1.0 and 0.0 <= report["knn"]["accuracy"] <= 1.0
        block = report["corruptions"]
        assert set(block["accuracy"]) == {"gaussian_noise", "fog"}
        assert set(block["accuracy"]["fog"]) == {"1", "5"}
        assert block["summary"]["normalization"] == "none" and block["preset"] == "cifar10"
        assert "unnormalized" in open(os.path.join(out, "report.md")).read()
        with open(os.path.join(out, "report.json")) as f:
            assert json.load(f)["clean"]["top1"] == report["clean"]["top1"]
    # The SupCon run had no classifier.keras: eval trained one and kept it in eval/.
    assert os.path.isfile(os.path.join(runs["supcon"], "eval", "classifier.keras"))
    # With the run's stage-2 settings; those its run_config.json lacks are TrainConfig's defaults.
    assert evaluated["supcon"]["classifier"]["optimizer"] == TrainConfig().linear_optimizer
    assert evaluated["supcon"]["classifier"]["epochs"] == 1
    assert "cross-entropy" in evaluated["ce"]["classifier"]["source"]


def test_report_is_deterministic(runs, evaluated):
    again = evaluation.evaluate_run(runs["ce"], output_dir=os.path.join(runs["ce"], "eval2"), **SMALL)
    assert again["corruptions"]["accuracy"] == evaluated["ce"]["corruptions"]["accuracy"]


def test_eval_trains_the_classifier_train_py_would(tmp_path):
    """eval.py's classifier is stage 2 itself: the run's linear_* settings, the --classifier_* flags
    over them, and the same weights as `supcon.training.linear_stage.train_linear_classifier`."""
    run = _write_run(tmp_path / "run", "supcon", linear_optimizer="sgd", linear_learning_rate=0.4,
                     linear_label_smoothing=0.1, linear_augmentation="none", crop_min_scale=0.3)
    config = evaluation.EvalConfig(model_dir=run, corruptions=(), knn_k=0, max_test_examples=16, batch_size=16,
                                   progress=False, seed=2, classifier_epochs=2, classifier_batch_size=64)
    report = evaluation.evaluate_run(config)
    settings = linear_stage.LinearStageSettings(
        epochs=2, optimizer="sgd", batch_size=64, learning_rate=0.4, label_smoothing=0.1, augmentation="none",
        crop_min_scale=0.3)
    info = report["classifier"]
    assert {k: info[k] for k in settings.to_json()} == settings.to_json() and info["seed"] == 2
    assert report["settings"]["classifier"]["epochs"] == 2 and report["settings"]["classifier"]["optimizer"] is None

    model = keras.saving.load_model(os.path.join(run, "model.keras"), compile=False)
    direct, _ = linear_stage.train_linear_classifier(model.encoder, data.load("digits", "train"), settings,
                                                     num_classes=10, image_size=32, seed=2)
    saved = keras.saving.load_model(os.path.join(run, "eval", "classifier.keras"), compile=False)
    for a, b in zip(saved.classifier_head.get_weights(), direct.classifier_head.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_classifier_settings_are_refused_before_any_work(tmp_path):
    run = _write_run(tmp_path / "run", "supcon", linear_warmup_epochs=2.0, linear_epochs=4)
    with pytest.raises(evaluation.EvalInputError, match=r"classifier's settings .*--classifier_epochs.*"
                       r"`linear_warmup_epochs` must be in \[0, linear_epochs=2\)"):
        evaluation.evaluate_run(run, classifier_epochs=2, corruptions=(), knn_k=0)
    assert not os.path.exists(os.path.join(run, "eval"))


def _run_cli(argv):
    flags.FLAGS.unparse_flags()
    try:
        remaining = supcon_flags.one_line_parser("eval.py")(["eval.py"] + argv)
        eval_main.main(remaining)
    finally:
        flags.FLAGS.unparse_flags()


def test_compare(runs, evaluated, tmp_path, capsys):
    out = str(tmp_path / "cmp")
    _run_cli(["--compare", runs["supcon"], runs["ce"], f"--output_dir={out}"])
    printed = capsys.readouterr().out
    assert "| top-1 accuracy (%) |" in printed and "supcon (supcon)" in printed and "ce (ce)" in printed
    files = ("comparison.md", "comparison.json", "summary.png", "reliability_diagram.png",
             "accuracy_vs_severity.png", "corruption_errors.png")
    for file in files:
        assert os.path.getsize(os.path.join(out, file)) > 0
        assert f"  {os.path.join(out, file)}\n" in printed  # Each file written is named.
    # The summary figure has its three panels (headline bars, severity curves, reliability).
    from PIL import Image  # noqa: PLC0415
    with Image.open(os.path.join(out, "summary.png")) as summary:
        assert summary.size[0] > 2.5 * summary.size[1]


def test_eval_py_in_a_fresh_process(runs, tmp_path):
    # A fresh interpreter has imported nothing of supcon: eval.py itself must register the
    # Keras classes saved in model.keras (the in-process tests above import supcon.models).
    out = tmp_path / "fresh"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "eval.py"), f"--model_dir={runs['supcon']}",
         f"--output_dir={out}", "--corruptions=fog", "--severities=1", "--max_test_examples=16",
         "--knn_k=5", "--batch_size=16", "--noprogress", "--classifier_epochs=1"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "top-1" in result.stdout and os.path.isfile(out / "report.json")
    # Where every report file and plot is, one per line.
    for line in (f"Report: {out / 'report.md'}", f"  every number: {out / 'report.json'}",
                 f"  plot: {out / 'reliability_diagram.png'}", f"  plot: {out / 'accuracy_vs_severity.png'}",
                 f"  plot: {out / 'corruption_errors.png'}", f"  classifier trained here: {out / 'classifier.keras'}"):
        assert line + "\n" in result.stdout, (line, result.stdout)


def _one_line_error(argv):
    # As eval.py's entry point runs main: an input error becomes one line and exit code 1.
    with pytest.raises(SystemExit) as info:
        console.run_reporting_errors("eval.py", lambda: _run_cli(argv))
    message = str(info.value.code)
    assert message.startswith("eval.py: ") and "\n" not in message
    return message


def test_bad_inputs(runs, tmp_path):
    assert "does not exist" in _one_line_error([f"--model_dir={tmp_path / 'nope'}"])
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "run_config.json").write_text("{}")
    assert "missing model.keras" in _one_line_error([f"--model_dir={incomplete}"])
    wrong = _write_run(tmp_path / "three", "ce", num_classes=3)
    assert "trained for 3 classes" in _one_line_error([f"--model_dir={wrong}"])
    assert "unknown corruption 'rain'" in _one_line_error([f"--model_dir={runs['ce']}", "--corruptions=fog,rain"])
    assert "No evaluation report" in _one_line_error(
        ["--compare", runs["supcon"], str(tmp_path), f"--output_dir={tmp_path / 'cmp'}"])


def test_eval_flags_are_the_config_fields():
    """Every eval.py flag but --compare is an EvalConfig field, with the field's default."""
    values = flags.FlagValues()
    sections = supcon_flags.define_eval_flags(values)
    names = [name for _, section in sections for name in section]
    assert sorted(set(names) - {"compare"}) == sorted(evaluation.EvalConfig.__dataclass_fields__)
    values(["eval.py", "--model_dir=runs/x", "--severities=1,3", "--corruptions=fog", "--classifier_epochs=4"])
    config = supcon_flags.eval_config(values)
    assert config == evaluation.EvalConfig(model_dir="runs/x", severities=(1, 3), corruptions=("fog",),
                                           classifier_epochs=4)
    assert supcon_flags.eval_config(_parsed_defaults()) == evaluation.EvalConfig(model_dir="runs/x")


def _parsed_defaults():
    values = flags.FlagValues()
    supcon_flags.define_eval_flags(values)
    values(["eval.py", "--model_dir=runs/x"])
    return values


def test_report_module_leaves_the_matplotlib_backend_alone():
    # A notebook that evaluates a run must keep showing its own figures inline: the report draws
    # on pyplot-free figures instead of switching the process to Agg.
    code = ("import matplotlib; matplotlib.use('svg'); import supcon.evaluation.report; "
            "print(matplotlib.get_backend())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "svg"
