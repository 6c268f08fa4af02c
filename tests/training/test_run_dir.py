"""The run directory: resume with the same settings, refuse different ones, --overwrite."""

import json
import os

import pytest

from supcon.training import run_dir


def test_fresh_then_resume_then_conflict(tmp_path):
    d = str(tmp_path)
    config = {"method": "supcon", "epochs": 2, "strategy": "auto"}
    assert run_dir.prepare(d, config) is False
    assert json.load(open(os.path.join(d, "run_config.json"))) == config
    # A different strategy is a resumption of the same run.
    assert run_dir.prepare(d, dict(config, strategy="mirrored")) is True
    with pytest.raises(run_dir.RunDirectoryConflict, match="epochs: 2 -> 3.*--overwrite"):
        run_dir.prepare(d, dict(config, epochs=3))


def test_overwrite_removes_only_run_artifacts(tmp_path):
    d = str(tmp_path)
    run_dir.prepare(d, {"epochs": 2})
    os.makedirs(os.path.join(d, "checkpoints"))
    open(os.path.join(d, "notes.txt"), "w").write("keep me")
    assert run_dir.prepare(d, {"epochs": 3}, overwrite=True) is False
    assert sorted(os.listdir(d)) == ["notes.txt", "run_config.json"]


def test_atomic_json_leaves_no_temporary_files(tmp_path):
    path = str(tmp_path / "x.json")
    run_dir.write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        run_dir.write_json_atomic(path, {"a": object()})
    assert os.listdir(tmp_path) == ["x.json"]
    assert run_dir.read_json(path) == {"a": 1}
