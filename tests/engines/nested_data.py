"""tanh wraps its result twice: ``Value(Value(t))``, a Value nested in
``.data`` (a learner's slip).  The op is there and wrong, not absent."""
import math

from backprop_method import Value as _Base


class Value(_Base):
    def _make(self, data, children, local):
        out = Value(data, children)
        out._local = local
        return out

    def __init__(self, data, _children=()):
        self.data = data if isinstance(data, _Base) else float(data)
        self.grad = 0.0
        self._prev = _children
        self._local = ()

    def tanh(self):
        t = math.tanh(self.data)
        return self._make(Value(t), (self,), (1.0 - t * t,))

    def backward(self):
        self.backprop()
