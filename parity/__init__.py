"""gradparity's harness: checks a scalar autograd engine against PyTorch.

The one flow: a Case (plain data, see case.py) goes to every backend
(backends/), each returns a Result of the same shape; compare.py turns an
engine Result and a torch Result into errors and a verdict, asking the
high-precision oracle when they disagree; report.py writes one row per case.
The op table (ops.py) is the only place that knows about ops.
"""
__version__ = "0.1.0"
