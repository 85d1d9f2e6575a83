"""gradparity's harness: checks a scalar autograd engine against PyTorch.

The one flow: a Case (plain data, see case.py) goes to every backend
(backends/), each returns a Result of the same shape; compare.py turns an
engine Result and a torch Result into errors and a verdict, asking the
high-precision oracle when they disagree; report.py writes one row per case.
The op table (ops.py) is the only place that knows about ops.
"""
__version__ = "0.1.0"


def __getattr__(name):
    # The public helpers, imported on first use: `import parity` stays light
    # (no torch, no pytest).
    if name == "check_function":
        from .functions import check_function
        return check_function
    if name == "assert_parity":
        from .plugin import assert_parity
        return assert_parity
    raise AttributeError(f"module 'parity' has no attribute {name!r}")
