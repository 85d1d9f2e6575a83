"""Hostile: tanh's backward, for inputs above 1, allocates without end."""
from hostile_base import Value, on_tanh_backward  # noqa: F401

_hoard = []


@on_tanh_backward
def attack(x):
    if x > 1.0:
        while True:
            _hoard.append(bytearray(64 << 20))
