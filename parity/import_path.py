"""The harness's own modules come first on the module path.

Python puts the working directory first on sys.path for `python -m` and
`python -c`: a learner's engine.py (or any concurrent.py, signal.py ...)
beside them would stand in for the harness's `engine` package or the
standard library, in this process and in every process started from it
(the judges inherit this process's sys.path).  The working directory stays
on the path, last, for engines named as modules (`--engine mymodule:Value`);
a file engine is loaded by its path (sandbox/engine_runner.py), whatever
the path says.
"""
import os
from pathlib import Path
import sys

HARNESS_ROOT = Path(__file__).resolve().parent.parent  # holds parity/ and engine/


def harness_first():
    """Move the working directory's entries of sys.path to its end (unless
    the working directory is the harness's own root)."""
    cwd = os.getcwd()
    if os.path.realpath(cwd) == os.path.realpath(HARNESS_ROOT):
        return
    here = [entry for entry in sys.path if os.path.realpath(entry or ".") == os.path.realpath(cwd)]
    if here:
        sys.path[:] = [entry for entry in sys.path if entry not in here] + [cwd]
