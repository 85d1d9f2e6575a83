"""A correct engine (+ - * neg tanh) whose backward takes a seed,
``backward(gradient=1.0)``, as torch's and ours do; each pass adds its own
gradients to ``.grad`` (torch's accumulation).  The base of
``ignores_seed.py``, ``keeps_state.py`` and ``unreached_gradient.py``, which
patch its backward (each engine runs in a worker of its own)."""
import math


class Value:
    def __init__(self, data, _children=(), _local=()):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _children
        self._local = _local  # d self / d child, per child

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other if isinstance(other, Value) else -other)

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    def backward(self, gradient=1.0):
        propagate(self, topological(self), gradient)


def topological(root):
    """Every value root depends on, each after its operands."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:  # iterative depth-first post-order
        v, expanded = stack.pop()
        if expanded:
            order.append(v)
        elif id(v) not in seen:
            seen.add(id(v))
            stack.append((v, True))
            stack.extend((child, False) for child in v._prev)
    return order


def propagate(root, order, gradient):
    """One backward pass over ``order`` from ``root``, seeded with ``gradient``."""
    this_pass = {id(v): 0.0 for v in order}
    this_pass[id(root)] = float(gradient)
    for v in reversed(order):
        g = this_pass[id(v)]
        v.grad += g
        for child, local in zip(v._prev, v._local):
            this_pass[id(child)] += local * g
