"""Hostile: a segmentation fault in tanh's backward, for inputs above 1."""
import ctypes

from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 1.0:
        ctypes.string_at(0)
