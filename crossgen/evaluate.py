"""`python -m crossgen.evaluate`: the command of the evaluation, which lives in `crossgen/evaluation/evaluate.py`."""
import sys

from .cli import run
from .evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(run(main))
