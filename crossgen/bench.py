"""`python -m crossgen.bench`: the command of the speed benchmark, which lives in `crossgen/evaluation/bench.py`."""
import sys

from .cli import run
from .evaluation.bench import main

if __name__ == "__main__":
    sys.exit(run(main))
