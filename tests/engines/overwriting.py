"""A scalar engine whose backward assigns gradients instead of adding them:
``a + a`` gets 1, a value used twice keeps one contribution (the b = a + a
bug class the accumulation family exists for)."""


class Value:
    def __init__(self, data, prev=(), local=()):
        self.data, self.grad, self._prev, self._local = float(data), 0.0, prev, local

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                for child in v._prev:
                    visit(child)
                order.append(v)
        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            for child, local in zip(v._prev, v._local):
                child.grad = v.grad * local  # the bug: = instead of +=
