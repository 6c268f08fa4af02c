"""Evaluation entry point (placeholder until the eval.py issue lands)."""

import sys


def run_main():
    sys.exit("supcon: eval.py is not yet available; see the open eval.py issue.")


if __name__ == "__main__":
    run_main()
