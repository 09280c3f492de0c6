"""The `python -m crossgen.…` commands answer like the app: a user mistake is one line and exit status 2.

Each command's ``__main__`` block is ``sys.exit(run(main))``. A :class:`~crossgen.errors.CrossgenError` (a data
set or checkpoint that is not there, a set too small to split, a flag that does not fit the others: see
``crossgen.errors``) prints ``error: <message>`` on stderr and gives status 2, as argparse does for a flag it
does not know; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

from .errors import CrossgenError, UsageError

__all__ = ["USAGE_STATUS", "UsageError", "run"]

USAGE_STATUS = 2  # argparse's exit status for a bad command line


def run(main: Callable[[list[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)`` (argv None: the command line) and return its exit status.

    Args:
        main: the command's main function; it raises a CrossgenError for a user mistake.
        argv: the arguments, without the program name; None reads sys.argv.

    Returns:
        main's own status when it returns an int, else 0; 2 after printing ``error: <message>`` for a user mistake.
    """
    try:
        status = main(None if argv is None else list(argv))
    except CrossgenError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return USAGE_STATUS
    return status if isinstance(status, int) and not isinstance(status, bool) else 0
