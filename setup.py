"""Installs the `supcon` package and its `supcon-train` / `supcon-eval` commands.

GPU users: `pip install -e . tensorflow[and-cuda]`. tensorflow-addons is *not* a
dependency: it is end-of-life and cannot be imported with Keras 3. Nor is keras-cv: nothing
imports it (why, per op: `supcon/data/augment.py`, `supcon/data/autoaugment.py`).
"""

from setuptools import find_packages, setup

setup(
    name="supcon",
    version="0.1.0",
    description="Supervised Contrastive Learning (Khosla et al. 2020) and GenSCL in TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["supcon", "supcon.*"]),
    py_modules=["train", "eval"],
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.8,<4",
        "absl-py>=2.0",
        "numpy>=1.26",
        "tensorflow-datasets>=4.9",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6.29",
        ],
    },
    entry_points={
        "console_scripts": [
            "supcon-train=train:run_main",
            "supcon-eval=eval:run_main",
        ],
    },
)
