"""The run directory: resume with the same settings, refuse different ones, --overwrite."""

import json
import os

import pytest

from supcon.training import run_dir


def test_fresh_then_resume_then_conflict(tmp_path):
    d = str(tmp_path)
    config = {"method": "supcon", "epochs": 2, "strategy": "auto"}
    assert run_dir.prepare(d, config) == "new"
    assert json.load(open(os.path.join(d, "run_config.json"))) == config
    # A different strategy is a resumption of the same run.
    assert run_dir.prepare(d, dict(config, strategy="mirrored")) == "resume"
    with pytest.raises(run_dir.RunDirectoryConflict, match="method: 'supcon' -> 'ce'.*--overwrite"):
        run_dir.prepare(d, dict(config, method="ce"))
    # Fewer epochs are another run; more epochs extend this one.
    with pytest.raises(run_dir.RunDirectoryConflict, match="epochs: 2 -> 1"):
        run_dir.prepare(d, dict(config, epochs=1))
    assert json.load(open(os.path.join(d, "run_config.json"))) == dict(config, strategy="mirrored")
    assert run_dir.prepare(d, dict(config, epochs=3, warmup_epochs=0.3)) == "extend"
    assert json.load(open(os.path.join(d, "run_config.json")))["epochs"] == 3


def test_a_run_written_before_a_setting_existed_had_its_default(tmp_path):
    # run_config.json of a run from before `augment_on` and `jit_compile` existed.
    d = str(tmp_path)
    defaults = {"method": "supcon", "epochs": 2, "augment_on": "host", "jit_compile": "auto"}
    old = {"method": "supcon", "epochs": 2}
    run_dir.write_json_atomic(os.path.join(d, "run_config.json"), old)
    assert run_dir.prepare(d, dict(defaults), defaults=defaults) == "resume"
    assert json.load(open(os.path.join(d, "run_config.json"))) == defaults  # Now with the keys.
    run_dir.write_json_atomic(os.path.join(d, "run_config.json"), old)
    with pytest.raises(run_dir.RunDirectoryConflict, match="augment_on: 'host' -> 'device'"):
        run_dir.prepare(d, dict(defaults, augment_on="device"), defaults=defaults)
    with pytest.raises(run_dir.RunDirectoryConflict, match="augment_on: None -> 'host'"):
        run_dir.prepare(d, dict(defaults))  # Without defaults, a missing key is a difference.
    assert json.load(open(os.path.join(d, "run_config.json"))) == old
    # A stored value wins over the default.
    run_dir.write_json_atomic(os.path.join(d, "run_config.json"), dict(old, augment_on="device"))
    with pytest.raises(run_dir.RunDirectoryConflict, match="augment_on: 'device' -> 'host'"):
        run_dir.prepare(d, dict(defaults), defaults=defaults)


def test_jit_compile_is_ignored_unless_the_augmentation_runs_on_the_device(tmp_path):
    # Under XLA the device augmentation's stateless ops draw other numbers (XLA's generator).
    d = str(tmp_path)
    host = {"method": "supcon", "augment_on": "host", "jit_compile": "auto"}
    assert run_dir.prepare(d, host) == "new"
    assert run_dir.prepare(d, dict(host, jit_compile="true")) == "resume"
    device = dict(host, augment_on="device", jit_compile="false")
    assert run_dir.prepare(str(tmp_path / "device"), device) == "new"
    with pytest.raises(run_dir.RunDirectoryConflict, match="jit_compile: 'false' -> 'true'"):
        run_dir.prepare(str(tmp_path / "device"), dict(device, jit_compile="true"))
    with pytest.raises(run_dir.RunDirectoryConflict,
                       match="augment_on: 'host' -> 'device', jit_compile: 'true' -> 'false'"):
        run_dir.prepare(d, device)


def test_damaged_run_config_is_refused_and_kept(tmp_path):
    d = str(tmp_path)
    open(os.path.join(d, "run_config.json"), "w").write('{"method": "sup')
    with pytest.raises(run_dir.RunDirectoryConflict, match="damaged.*--overwrite"):
        run_dir.prepare(d, {"method": "supcon"})
    assert open(os.path.join(d, "run_config.json")).read() == '{"method": "sup'
    assert run_dir.prepare(d, {"method": "supcon"}, overwrite=True) == "new"


def test_lock_refuses_a_second_owner_and_is_released(tmp_path):
    d = str(tmp_path / "run")
    lock = run_dir.RunLock(d)
    with pytest.raises(run_dir.RunDirectoryError, match="in use by another training process"):
        run_dir.RunLock(d)
    lock.release()
    run_dir.RunLock(d).release()
    assert os.listdir(d) == []  # No lock file.


def test_check_writable_refuses_a_file_and_creates_nothing(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(run_dir.RunDirectoryError, match="must be a directory.*is a file"):
        run_dir.check_writable(str(path))
    with pytest.raises(run_dir.RunDirectoryError, match="cannot be created.*is a file"):
        run_dir.check_writable(str(path / "below"))
    run_dir.check_writable(str(tmp_path / "new" / "run"))
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_overwrite_removes_only_run_artifacts(tmp_path):
    d = str(tmp_path)
    run_dir.prepare(d, {"epochs": 2})
    os.makedirs(os.path.join(d, "checkpoints"))
    open(os.path.join(d, "notes.txt"), "w").write("keep me")
    assert run_dir.prepare(d, {"epochs": 3}, overwrite=True) == "new"
    assert sorted(os.listdir(d)) == ["notes.txt", "run_config.json"]


def test_atomic_json_leaves_no_temporary_files(tmp_path):
    path = str(tmp_path / "x.json")
    run_dir.write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        run_dir.write_json_atomic(path, {"a": object()})
    assert os.listdir(tmp_path) == ["x.json"]
    assert run_dir.read_json(path) == {"a": 1}
