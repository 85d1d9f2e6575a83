"""A micrograd whose gradients are Values after backward(create_graph=True)
(karpathy/micrograd#3's request): no grad() function, so the harness
differentiates by calling backward again on a gradient.  Ops: + - * neg,
** number, tanh, exp.  Correct, unless BUG names one of:

- ``tanh_data``: tanh's backward reads ``out.data`` where a Value is needed:
  right at first order, not differentiable (tanh'' comes out 0);
- ``mul_second``: mul's backward is right at first order, its contribution
  to the other operand is built from a constant copy of the operand.
"""
import math

BUG = None


class Value:
    def __init__(self, data, _prev=(), _backward=None):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _prev
        self._backward = _backward  # (upstream Value or float, create_graph) -> contributions per operand

    def __repr__(self):
        return f"Value({self.data!r})"

    @staticmethod
    def _wrap(x):
        return x if isinstance(x, Value) else Value(x)

    def __add__(self, other):
        other = self._wrap(other)
        return Value(self.data + other.data, (self, other), lambda g, cg: (g, g))

    __radd__ = __add__

    def __mul__(self, other):
        other = self._wrap(other)

        def backward(g, cg):
            if not cg:
                return g * other.data, g * self.data
            first = other if BUG != "mul_second" else Value(other.data)
            return g * first, g * self
        return Value(self.data * other.data, (self, other), backward)

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-self._wrap(other))

    def __rsub__(self, other):
        return self._wrap(other) + (-self)

    def __pow__(self, exponent):
        assert isinstance(exponent, (int, float))

        def backward(g, cg):
            base = self if cg else self.data
            return (g * (exponent * base ** (exponent - 1)),)
        return Value(self.data ** exponent, (self,), backward)

    def tanh(self):
        t = math.tanh(self.data)

        def backward(g, cg):
            y = out if cg and BUG != "tanh_data" else out.data
            return (g * (1 - y * y),)
        out = Value(t, (self,), backward)
        return out

    def exp(self):
        def backward(g, cg):
            return (g * (out if cg else out.data),)
        out = Value(math.exp(self.data), (self,), backward)
        return out

    def backward(self, create_graph=False):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for child in v._prev:
                    visit(child)
                order.append(v)
        visit(self)
        grads = {id(self): Value(1.0) if create_graph else 1.0}
        for v in reversed(order):
            g = grads.get(id(v))
            if g is None:
                continue
            v.grad = v.grad + g
            if v._backward is not None:
                for child, contribution in zip(v._prev, v._backward(g, create_graph)):
                    grads[id(child)] = grads[id(child)] + contribution if id(child) in grads else contribution
