"""Hostile: tanh's backward, for inputs above 1, writes garbage straight
into the worker's connection to the harness."""
import os

from hostile_base import Value, on_tanh_backward  # noqa: F401


@on_tanh_backward
def attack(x):
    if x > 1.0:
        for fd in range(3, 64):
            try:
                os.write(fd, b"\x00\x00\x00\x05[1,2]garbage")
            except OSError:
                pass
