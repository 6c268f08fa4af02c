"""The `configs/` recipes: which official run each reproduces and the number it should reach.

`python -m supcon.recipes` lists them with their commands. Each recipe is a flagfile that sets every
setting its source fixes (`train.py --flagfile=configs/NAME.flags --print_config` shows them all);
`tests/test_recipes.py` compares each, field by field, with the official values and their sources.
The digits main job (`train.py` with no flags) is not a recipe: its settings are its own
(`supcon.training.TrainConfig`).
"""

import dataclasses
import os
import sys

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One recipe.

    Attributes:
        name: the flagfile's name without `.flags`.
        source: the official run it follows (repository and script or command).
        target: the top-1 test accuracy (%) its source reports, and where.
    """

    name: str
    source: str
    target: str

    @property
    def path(self):
        """`configs/NAME.flags` (relative to the repository root)."""
        return os.path.join("configs", f"{self.name}.flags")

    @property
    def command(self):
        """The command that runs it."""
        return f"python train.py --flagfile={self.path} --model_dir=runs/{self.name}"


_PYTORCH = "HobbitLong/SupContrast"
_TF = "google-research/google-research supcon/"
RECIPES = (
    Recipe("supcon_cifar10", f"{_PYTORCH} main_supcon.py + main_linear.py (README commands)",
           "96.0 (paper Table 1; SupContrast README)"),
    Recipe("supcon_cifar100", f"{_PYTORCH} main_supcon.py --dataset cifar100",
           "76.5 (SupContrast README)"),
    Recipe("simclr_cifar10", f"{_PYTORCH} main_supcon.py --method SimCLR --temp 0.5",
           "93.6 (paper Table 1; SupContrast README)"),
    Recipe("ce_cifar10", f"{_PYTORCH} main_ce.py (README command)",
           "95.0 (paper Table 1; SupContrast README)"),
    Recipe("ce_cifar100", f"{_PYTORCH} main_ce.py --dataset cifar100",
           "75.3 (SupContrast README)"),
    Recipe("supcon_imagenet_resnet50", f"{_TF}scripts/supcon_imagenet_resnet50.sh",
           "78.7 (paper Table 2)"),
    Recipe("supcon_imagenet_resnet200", f"{_TF}scripts/supcon_imagenet_resnet200.sh",
           "81.4 (paper Table 2)"),
    Recipe("simclr_imagenet_resnet50", f"{_TF}scripts/simclr_imagenet_resnet50.sh",
           "70.2 (paper Table 2, quoting Chen et al. 2020; not re-checked here)"),
    Recipe("genscl_cifar100", "kiimmm/GenSCL genscl.py + linear.py (README commands)",
           "84.7 with a distillation teacher (GenSCL README)"),
)


def markdown():
    """The recipes as a Markdown table (name, source, target, command).

    Returns:
        str.
    """
    lines = ["| recipe | follows | reported top-1 (%) | command |", "| --- | --- | --- | --- |"]
    lines += [f"| `{r.name}` | {r.source} | {r.target} | `{r.command}` |" for r in RECIPES]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] not in ([], ["--markdown"]):
        sys.exit("usage: python -m supcon.recipes [--markdown]")
    if sys.argv[1:]:
        print(markdown())
    else:
        for recipe in RECIPES:
            print(f"{recipe.name:28s} {recipe.target}\n{'':28s} {recipe.source}\n"
                  f"{'':28s} {recipe.command}")
