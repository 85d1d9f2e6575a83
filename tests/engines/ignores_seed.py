"""seeded.py, its backward taking a seed and dropping it: every pass starts
from 1, whatever ``backward(gradient=g)`` says."""
from seeded import Value, propagate, topological


def backward(self, gradient=1.0):
    propagate(self, topological(self), 1.0)


Value.backward = backward
