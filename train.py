"""Training entry point (placeholder until the train.py issue lands)."""

import sys


def run_main():
    sys.exit("supcon: train.py is not yet available; see the open train.py issue.")


if __name__ == "__main__":
    run_main()
