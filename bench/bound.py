#!/usr/bin/env python
"""What a node costs at least in pure Python, against what ours and micrograd's cost.

    python bench/bound.py [--n 2000] [--repeats 7]

A chain ``x = x * 0.999`` of n nodes, forward and backward, timed per node in
this process (CPU time, time.thread_time, so that another job's load counts
less; the minimum over repeats), the collector off so that only the
interpreter's own work is counted (bench/pernode.py measures the collector):

- ``floats``: the floor, plain float products, and the backward a loop of products.
- ``least node``: the least any engine of Python objects can do: an operator
  method that makes an object of two slots (its operand, its gradient), and a
  backward that calls one Python function per node, which sets a product in
  the operand's gradient slot.  No creation order, no gradient slot, no op.
- ``engine``: engine.Value (this checkout's).
- ``micrograd``: micrograd 0.1.0, if installed.

Its last line: micrograd's cost over the least node's, the most any pure-Python
engine can be faster than micrograd on the identical graph.
"""
import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

_new = object.__new__


class Least:
    __slots__ = ("a", "g")

    def __mul__(self, c):
        out = _new(Least)
        out.a = self
        return out


def _least_backward(node, g):
    node.a.g = g * 0.999


def least(n):
    x0 = Least()
    x0.a = None
    x = x0
    for _ in range(n):
        x = x * 0.999
    t = time.thread_time()
    order = []
    node = x
    while node is not None:  # the nodes, newest first
        order.append(node)
        node = node.a
    x.g = 1.0
    for node in order:
        if node.a is not None:
            _least_backward(node, node.g)
    return t, x0.g


def floats(n):
    x = 0.5
    for _ in range(n):
        x = x * 0.999
    t = time.thread_time()
    g = 1.0
    for _ in range(n):
        g = g * 0.999
    return t, g


def value_chain(Value):
    def run(n):
        x0 = Value(0.5)
        x = x0
        for _ in range(n):
            x = x * 0.999
        t = time.thread_time()
        x.backward()
        return t, x0.grad
    return run


def measure(run, n, repeats):
    fwd, bwd = [], []
    for _ in range(repeats):
        t0 = time.thread_time()
        t1, _ = run(n)
        t2 = time.thread_time()
        fwd.append((t1 - t0) / n * 1e9)
        bwd.append((t2 - t1) / n * 1e9)
    return min(fwd), min(bwd)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    runs = {"floats": floats, "least node": least}
    from engine import Value
    runs["engine"] = value_chain(Value)
    try:
        from micrograd.engine import Value as MicrogradValue
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 2 * args.n + 1000))
        runs["micrograd"] = value_chain(MicrogradValue)
    except ImportError:
        pass
    gc.disable()
    print(f"Python {platform.python_version()}; chain x * 0.999 of {args.n} nodes; CPU ns per node, "
          f"min of {args.repeats}; gc off; load average {os.getloadavg()[0]:.2f}")
    results = {name: measure(run, args.n, args.repeats) for name, run in runs.items()}
    for name, (f, b) in results.items():
        print(f"  {name:11s} forward {f:6.0f}  backward {b:6.0f}  total {f + b:6.0f}")
    if "micrograd" in results:
        mg, lo, eng = (sum(results[k]) for k in ("micrograd", "least node", "engine"))
        print(f"micrograd / least node: {mg / lo:.1f}x (the most a pure-Python engine can gain); "
              f"micrograd / engine: {mg / eng:.1f}x")


if __name__ == "__main__":
    main()
