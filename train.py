"""Train SupCon / SimCLR / GenSCL / cross-entropy, linear-evaluate, export. See flags.md.

    python train.py                       # the main job: SupCon on the embedded digits data
    python train.py --flagfile=configs/supcon_cifar10.flags --model_dir=runs/cifar10

The run itself lives in `supcon.training.run.train`: set-up → data → model → fit (resumable) →
linear classifier → evaluate → export, all under --model_dir.
"""

from absl import app

from supcon import flags as supcon_flags
from supcon.training import run


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = supcon_flags.config_from_flags()  # Parsed and validated flags.
    results = run.train(config)  # Data -> model -> fit -> linear classifier -> evaluate -> export.
    print(f"Run directory: {config.model_dir} (test accuracy {results['test_accuracy']:.4f})")


def run_main():
    """Console-script entry point (`supcon-train`)."""
    app.run(main)


if __name__ == "__main__":
    run_main()
