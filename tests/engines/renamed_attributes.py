"""A correct engine in another vocabulary: ``Scalar(x, requires_grad=True)``
(a leaf made without it gets no gradient), the number in ``val``, the
gradient in ``g``."""


class Scalar:
    def __init__(self, val, requires_grad=False, _parents=(), _local=()):
        self.val, self.requires_grad = float(val), requires_grad or bool(_parents)
        self.g = 0.0
        self._parents, self._local = _parents, _local

    def __add__(self, other):
        other = other if isinstance(other, Scalar) else Scalar(other)
        return Scalar(self.val + other.val, _parents=(self, other), _local=(1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Scalar) else Scalar(other)
        return Scalar(self.val * other.val, _parents=(self, other), _local=(other.val, self.val))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((parent, False) for parent in node._parents)
        self.g += 1.0
        for node in reversed(order):
            for parent, local in zip(node._parents, node._local):
                if parent.requires_grad:
                    parent.g += local * node.g
