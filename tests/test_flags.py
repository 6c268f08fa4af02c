"""Flags: flags.md is fresh, every recipe parses, bad values fail naming the flag and the choices.

Each test defines the flags into its own `FlagValues`, as `train.py` / `eval.py` do into the global one.
"""

import glob
import os

import pytest
from absl import flags

from supcon import flags as supcon_flags
from supcon.training import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def parse(monkeypatch):
    monkeypatch.chdir(ROOT)  # Recipes include each other by repo-relative paths.

    def _parse(*argv):
        flag_values = flags.FlagValues()
        supcon_flags.define_train_flags(flag_values)
        flag_values(["train.py", *argv])
        return supcon_flags.train_config(flag_values)

    return _parse


def test_flags_md_is_fresh():
    with open(os.path.join(ROOT, "flags.md"), encoding="utf-8") as f:
        assert f.read() == supcon_flags.markdown(), "flags.md is stale: run `make flags`."


def test_defaults_are_the_config_defaults(parse):
    assert parse() == TrainConfig()


def test_every_flag_is_a_config_field_and_documented():
    sections = supcon_flags.define_train_flags(flags.FlagValues())
    names = [n for _, section in sections for n in section]
    # Every flag is a setting of the run, but --print_config, which only shows them.
    assert sorted(set(names) - {"print_config"}) == sorted(TrainConfig.__dataclass_fields__)
    text = supcon_flags.markdown()
    assert all(f"`--{n}`" in text for n in names)


def test_eval_flags_share_names_with_train_flags_and_are_documented():
    eval_values = flags.FlagValues()
    names = [n for _, section in supcon_flags.define_eval_flags(eval_values) for n in section]
    assert {"dataset", "data_dir", "seed", "model_dir"} <= set(names)
    assert eval_values["dataset"].default is None  # The run's data set, unlike train.py's `digits`.
    text = supcon_flags.markdown()
    assert all(f"`--{n}`" in text for n in names)
    with pytest.raises(flags.Error, match="classifier_optimizer"):
        eval_values(["eval.py", "--classifier_optimizer=adagrad"])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.flags"))))
def test_recipes_parse(parse, path):
    config = parse(f"--flagfile={os.path.relpath(path, ROOT)}")
    assert config.dataset != "digits"
    with open(path, encoding="utf-8") as f:
        assert f.readline().startswith("#"), "each recipe says where its numbers come from"


def test_recipe_values(parse):
    config = parse("--flagfile=configs/supcon_imagenet_resnet200.flags")
    assert (config.depth, config.epochs, config.batch_size, config.optimizer) == (200, 700, 4096, "lars")
    assert config.augmentation == "stacked_randaugment" and config.temperature == 0.1
    assert parse("--flagfile=configs/simclr_cifar10.flags").temperature == 0.5
    assert parse("--head_dims=64,32", "--lr_boundaries=5,8", "--lr_schedule=piecewise").head_dims == (64, 32)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--method=byol"], "--method.*supcon\\|simclr\\|genscl\\|ce|method.*one of"),
        (["--optimizer=adagrad"], "optimizer"),
        (["--batch_size=0"], "batch_size"),
        (["--temperature=0"], "temperature"),
        (["--epochs=3", "--warmup_epochs=5"], "--warmup_epochs must be smaller than --epochs"),
        (["--mixup=1.0"], "--method=genscl or ce"),
        (["--teacher=/tmp/t"], "--teacher"),
        (["--head_dims=64,x"], "--head_dims"),
        (["--lr_schedule=piecewise"], "--lr_boundaries"),
        (["--tpu=grpc://x:1"], "--strategy=tpu"),
        (["--augmentation=cutout"], "augmentation"),
        (["--precision=float16"], "precision"),
    ],
)
def test_bad_values_fail_while_parsing(parse, argv, needle):
    with pytest.raises(flags.Error, match=needle):
        parse(*argv)
