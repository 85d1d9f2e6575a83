"""Hostile: raise SystemExit in tanh's backward, for inputs above 1."""
from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 1.0:
        raise SystemExit
