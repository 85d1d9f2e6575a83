"""Hostile: sys.exit(0) in tanh's backward, for inputs above 1."""
import sys

from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 1.0:
        sys.exit(0)
