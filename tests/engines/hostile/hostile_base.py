"""A plain micrograd-style engine (add, mul, neg, sub, tanh) that the hostile
engines beside it build on: each registers a hook that tanh's backward calls
with tanh's input, and misbehaves there.  Loaded on its own, it is the
clean run they are compared with."""
import math

_hooks = []


def on_tanh_backward(hook):
    """Call ``hook(x)`` in every tanh backward, x the input."""
    _hooks.append(hook)
    return hook


class Value:
    def __init__(self, data, _children=()):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = _children

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def tanh(self):
        x, t = self.data, math.tanh(self.data)
        out = Value(t, (self,))

        def _backward():
            for hook in _hooks:
                hook(x)
            self.grad += (1 - t * t) * out.grad
        out._backward = _backward
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:  # iterative depth-first post-order
            v, expanded = stack.pop()
            if expanded:
                order.append(v)
            elif id(v) not in seen:
                seen.add(id(v))
                stack.append((v, True))
                stack.extend((child, False) for child in v._prev)
        self.grad = 1.0
        for v in reversed(order):
            v._backward()
