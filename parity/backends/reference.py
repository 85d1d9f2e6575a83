"""The reference: what an engine's results are compared with.

``torch``: PyTorch in float64, the specification; where engine and torch
disagree the oracle referees (compare.py), and ``torch_off`` says torch
itself was off.  ``oracle``: the exact answer, rounded once to float64
(backends/oracle.py: mpmath, torch's conventions op by op from the op
table, the signs of zeros from its sign rules), for a Python without torch.
A verdict then compares the engine with the exact answer under the same
allowances (the tolerance, then the oracle's spread); ``torch_off``
cannot occur, and a case where torch's float64 answer is not the exact one
rounded (an ill-conditioned case that torch and a correct engine both get
a few ulps off) is ``ill_conditioned`` where the torch reference says
``pass``.  ``auto``: torch where it can be imported, else the oracle.
"""
import importlib.metadata
import importlib.util

REFERENCES = ("torch", "oracle")
CHOICES = REFERENCES + ("auto",)


def torch_importable():
    # find_spec does not import torch (importing it takes seconds).
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def resolve(name):
    """``auto`` as torch or oracle for this Python; ValueError for a torch
    reference where torch cannot be imported, or an unknown name."""
    if name == "auto":
        return "torch" if torch_importable() else "oracle"
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; choose one of {', '.join(CHOICES)}")
    if name == "torch" and not torch_importable():
        raise ValueError("--reference torch: PyTorch is not installed for this Python; "
                         "--reference oracle judges against the exact answer without it")
    return name


def default_reference():
    """RunSpec's default: torch where it can be imported, else the oracle."""
    return resolve("auto")


def make_reference(name, oracle):
    """The reference backend called ``name`` (torch or oracle); the oracle's
    is ``oracle`` itself, as a reference."""
    if name == "oracle":
        return OracleReference(oracle)
    from .torch import TorchBackend
    return TorchBackend()


def version(name):
    """The reference's version, for the sidecar (torch's, read without importing it)."""
    if name == "oracle":
        import mpmath
        return f"mpmath {mpmath.__version__}, 256 bits"
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def describe(name):
    """The reference in words, for the summary and the report."""
    if name == "oracle":
        return ("the oracle (exact, rounded to float64; no torch): verdicts compare the engine with the "
                "exact answer, and torch_off cannot occur")
    return "torch (float64), the oracle refereeing where they disagree"


class OracleReference:
    """The oracle's exact results, rounded to float64, as the reference
    backend (what runner.run_cases and compare.judge call ``torch``).  It
    offers no cheap estimate of the spread (compare.judge's screen) and no
    float32 run: every mismatch is judged by the oracle's spread."""
    name = "oracle"

    def __init__(self, oracle):
        self.oracle = oracle

    @property
    def version(self):
        return self.oracle.version

    def run(self, case):
        return self.oracle.run(case)

    def run_batch(self, cases):
        return [self.oracle.run(case) for case in cases]

    def trace(self, case):
        """(values, grads) of every value of the graph, as TorchBackend.trace."""
        return self.oracle.trace(case)
