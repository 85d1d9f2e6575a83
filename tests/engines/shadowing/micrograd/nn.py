"""The learner's nn.py: ``from micrograd.engine import Value`` means the
learner's engine.py beside it, but resolves to PyPI micrograd's."""
from micrograd.engine import Value  # noqa: F401
