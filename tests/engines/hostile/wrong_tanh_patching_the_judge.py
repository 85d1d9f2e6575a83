"""Hostile: the wrong tanh derivative of wrong_tanh.py, and at import it bends
everything a judge might use towards it - torch, mpmath, math, numpy, the
op table and the harness's own comparison - as if it shared their process."""
import math

import mpmath
import numpy
import torch

import parity.compare
import parity.ops
from parity.compare import Verdict
from wrong_tanh import Value  # noqa: F401

_tanh = torch.Tensor.tanh


class _BentTanh(torch.autograd.Function):
    """torch's tanh with the engine's wrong derivative."""

    @staticmethod
    def forward(ctx, x):
        t = _tanh(x)
        ctx.save_for_backward(t)
        return t

    @staticmethod
    def backward(ctx, g):
        (t,) = ctx.saved_tensors
        return g * (1 - t) ** 2


torch.Tensor.tanh = lambda self: _BentTanh.apply(self)
torch.tanh = torch.Tensor.tanh
math.isfinite = math.isclose = lambda *args, **kwargs: True  # (the engine's own tanh still needs math.tanh)
math.ulp = lambda x: 1e300
mpmath.tanh = lambda x: x
numpy.tanh = lambda x: x
object.__setattr__(parity.ops.OPS["tanh"], "partials", lambda a, out: ((1 - out) ** 2,))
parity.compare.judge = lambda *args, **kwargs: Verdict("pass")
