"""eval.py end to end on tiny run directories: report files, --compare, bad inputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

import eval as eval_main
from supcon import console, evaluation, models
from supcon import flags as supcon_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(corruptions=["gaussian_noise", "fog"], severities=[1, 5], max_test_examples=16, knn_k=20,
             batch_size=16, progress=False)


def _write_run(path, method, num_classes=10):
    os.makedirs(path, exist_ok=True)
    encoder = models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(32, 32, 3))
    if method == "ce":
        model = models.CrossEntropyModel(encoder, num_classes)
    else:
        model = models.SupConModel(encoder, models.ProjectionHead(dims=(16, 8)))
    model.save(os.path.join(path, "model.keras"))
    config = {"dataset": "digits", "num_classes": num_classes, "image_size": 32, "method": method, "seed": 0,
              "linear_epochs": 1, "linear_batch_size": 128}
    with open(os.path.join(path, "run_config.json"), "w") as f:
        json.dump(config, f)
    return str(path)


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
    assert evaluated["supcon"]["classifier"]["optimizer"] == "sgd"
    assert "cross-entropy" in evaluated["ce"]["classifier"]["source"]


def test_report_is_deterministic(runs, evaluated):
    again = evaluation.evaluate_run(runs["ce"], output_dir=os.path.join(runs["ce"], "eval2"), **SMALL)
    assert again["corruptions"]["accuracy"] == evaluated["ce"]["corruptions"]["accuracy"]


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
    for file in ("comparison.md", "comparison.json", "reliability_diagram.png", "accuracy_vs_severity.png",
                 "corruption_errors.png"):
        assert os.path.getsize(os.path.join(out, file)) > 0


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
