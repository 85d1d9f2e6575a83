"""Hostile: os._exit(0) in tanh's backward, for inputs above 1: no cleanup, no exception."""
import os

from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 1.0:
        os._exit(0)
