"""A buggy engine: tanh's derivative written as (1 - t)**2 (a classic slip)."""
import math

from hostile_base import Value


def tanh(self):
    t = math.tanh(self.data)
    out = Value(t, (self,))

    def _backward():
        self.grad += (1 - t) ** 2 * out.grad
    out._backward = _backward
    return out


Value.tanh = tanh
