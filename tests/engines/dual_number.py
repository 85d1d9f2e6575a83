"""A dual-number class as CS107-style courses build it: forward mode only
(no backward, no gradient), its tangent in ``dual``.  Driven through an
adapter file that names the tangent (dual_number_adapter.py).  Correct for
one perturbation; nested, it cannot tell two apart (one tangent per number)."""
import math


class Dual:
    def __init__(self, real, dual=0.0):
        self.real = float(real)
        self.dual = float(dual)

    @staticmethod
    def _wrap(x):
        return x if isinstance(x, Dual) else Dual(x)

    def __add__(self, other):
        other = self._wrap(other)
        return Dual(self.real + other.real, self.dual + other.dual)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.real, -self.dual)

    def __sub__(self, other):
        return self + (-self._wrap(other))

    def __rsub__(self, other):
        return self._wrap(other) - self

    def __mul__(self, other):
        other = self._wrap(other)
        return Dual(self.real * other.real, self.dual * other.real + self.real * other.dual)

    __rmul__ = __mul__

    def __pow__(self, exponent):
        assert isinstance(exponent, (int, float))
        return Dual(self.real ** exponent, exponent * self.real ** (exponent - 1) * self.dual)

    def sin(self):
        return Dual(math.sin(self.real), math.cos(self.real) * self.dual)

    def cos(self):
        return Dual(math.cos(self.real), -math.sin(self.real) * self.dual)

    def exp(self):
        e = math.exp(self.real)
        return Dual(e, e * self.dual)

    def tanh(self):
        t = math.tanh(self.real)
        return Dual(t, (1 - t * t) * self.dual)
