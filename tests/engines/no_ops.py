"""Values with a number, a gradient and a backward, and no op the op table
spells (its only op is ``a.plus(b)``): every case is unsupported unless an
adapter file maps ``add`` to ``plus``."""
from backprop_method import Value as _Base


class Value(_Base):
    __add__ = __radd__ = __mul__ = __rmul__ = __neg__ = __sub__ = tanh = None

    def plus(self, other):
        out = Value(self.data + other.data, (self, other))
        out._local = (1.0, 1.0)
        return out

    def backward(self):
        self.backprop()
