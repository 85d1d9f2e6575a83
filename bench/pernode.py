#!/usr/bin/env python
"""Cost per node as the graph grows: ns/node (forward, backward) and bytes/node.

    python bench/pernode.py [--sizes 100,1000,10000,100000,1000000] [--repeats 5]
                            [--only engine,micrograd,floor] [--workloads chain,dag]
                            [--baseline DIR] [--json out.json]

Two graphs, each at every size (N nodes of our engine; the same user code in
every backend, so micrograd's graph is the identical one, constants included):

- ``chain``: ``x = x * 0.999 + 0.001``, N/2 steps from a leaf.
- ``dag``: from 16 leaves, each step takes the newest node x and a node y drawn
  uniformly from all earlier ones (seeded), and makes ``x * y``, ``(x + y) * 0.5``
  or ``relu(x)``: nodes are shared, reached in random memory order, and every
  value stays in [-1, 1].

Backends, each in its own subprocess that never imports torch: ``engine``
(this checkout's), ``before`` (``--baseline DIR``'s engine), ``micrograd``
(0.1.0, its recursion limit raised above the graph's depth), ``floor`` (plain
floats with a hand-written backward: a list of values and one of gradients;
its gradients are checked against the engine's).  The garbage collector keeps
its default settings.  Per size: one warm-up, then ``--repeats`` timed runs
(short ones averaged over several graphs), medians; forward and backward timed
apart.  Then one untimed run under tracemalloc: the bytes the forward graph
holds per node, and after backward; and the objects the collector tracks per
node (gc.get_objects()), and the full (generation 2) collections the forward
pass triggered.
"""
import argparse
import gc
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BACKENDS = ("engine", "before", "micrograd", "floor")
WORKLOADS = ("chain", "dag")
SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
SEED = 20240611
DAG_LEAVES = 16
MIN_REPEAT_SECONDS = 0.05
RTOL = 1e-9


def dag_plan(n):
    """[(kind, j)]: kind 0 = x * y, 1 = (x + y) * 0.5, 2 = relu(x), y = the
    leaf or earlier step j;
    as many steps as make n nodes (the average makes two)."""
    rng = random.Random(SEED + n)
    plan, nodes = [], 0
    while nodes < n:
        kind = rng.randrange(3)
        if kind == 1 and nodes + 2 > n:
            kind = 0
        plan.append((kind, rng.randrange(DAG_LEAVES + len(plan))))
        nodes += 2 if kind == 1 else 1
    return plan


def leaf_values():
    rng = random.Random(SEED)
    return [rng.uniform(-1.0, 1.0) for _ in range(DAG_LEAVES)]


# -- graph backends: forward(size) -> (output, leaves); backward(output) ------

class Graph:
    def __init__(self, value_class):
        self.Value = value_class

    def chain(self, n):
        x0 = self.Value(0.5)
        x = x0
        for _ in range(n // 2):
            x = x * 0.999 + 0.001
        return x, [x0]

    def dag(self, plan):
        leaves = [self.Value(v) for v in leaf_values()]
        nodes = list(leaves)
        x = nodes[-1]
        for kind, j in plan:
            y = nodes[j]
            if kind == 0:
                x = x * y
            elif kind == 1:
                x = (x + y) * 0.5
            else:
                x = x.relu()
            nodes.append(x)
        return x, leaves

    def backward(self, out):
        out.backward()

    @staticmethod
    def grads(leaves):
        return [leaf.grad for leaf in leaves]

    @staticmethod
    def value(out):
        return out.data


class Floor:
    """The same graphs on floats, the backward written out: a tape."""

    def chain(self, n):
        x = 0.5
        for _ in range(n // 2):
            x = x * 0.999 + 0.001
        return (x, n // 2), None

    def dag(self, plan):
        v = leaf_values()
        x = v[-1]
        for kind, j in plan:
            y = v[j]
            if kind == 0:
                x = x * y
            elif kind == 1:
                x = (x + y) * 0.5
            else:
                x = 0.0 if x < 0.0 else x
            v.append(x)
        return (x, v, plan), None

    def backward(self, out):
        if len(out) == 2:  # chain: d x_n / d x_0
            g = 1.0
            for _ in range(out[1]):
                g = g * 0.999
            self._grads = [g]
            return
        _, v, plan = out
        g = [0.0] * len(v)
        g[-1] = 1.0
        n = len(v) - 1
        for kind, j in reversed(plan):
            gn = g[n]
            n -= 1  # the newest node before this step: x
            if kind == 0:
                g[n] += gn * v[j]
                g[j] += gn * v[n]
            elif kind == 1:
                h = gn * 0.5
                g[n] += h
                g[j] += h
            elif v[n + 1] > 0.0:
                g[n] += gn
        self._grads = g[:DAG_LEAVES]

    def grads(self, leaves):
        return self._grads

    @staticmethod
    def value(out):
        return out[0]


def make_backend(name):
    if name in ("engine", "before"):
        from engine import Value
        return Graph(Value), Value.__module__.split(".")[0]
    if name == "micrograd":
        from micrograd.engine import Value
        return Graph(Value), "micrograd"
    return Floor(), "floats"


# -- subprocess side -----------------------------------------------------------

def measure(backend, workload, n, repeats):
    plan = dag_plan(n) if workload == "dag" else None
    build = (lambda: backend.chain(n)) if workload == "chain" else (lambda: backend.dag(plan))

    def once():
        t0 = time.perf_counter()
        out, leaves = build()
        t1 = time.perf_counter()
        backend.backward(out)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, out, leaves

    fwd, bwd, out, leaves = once()  # warm-up, and the figures checked
    result = {"n": n, "output": backend.value(out), "grads": backend.grads(leaves)}
    del out, leaves
    inner = max(1, math.ceil(MIN_REPEAT_SECONDS / max(fwd + bwd, 1e-9)))
    fwds, bwds = [], []
    for _ in range(repeats):
        gc.collect()  # the previous repeat's garbage, untimed; the collector stays on
        f = b = 0.0
        for _ in range(inner):
            df, db, _, _ = once()
            f += df
            b += db
        fwds.append(f / inner / n * 1e9)
        bwds.append(b / inner / n * 1e9)
    result.update(fwd=statistics.median(fwds), bwd=statistics.median(bwds),
                  total=statistics.median([f + b for f, b in zip(fwds, bwds)]), inner=inner,
                  fwd_runs=fwds, bwd_runs=bwds)

    # memory and the collector, untimed
    gc.collect()
    tracked_before = len(gc.get_objects())
    full_before = gc.get_stats()[2]["collections"]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out, leaves = build()
    after_forward = tracemalloc.get_traced_memory()[0]
    full_after = gc.get_stats()[2]["collections"]
    backend.backward(out)
    after_backward = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracked = len(gc.get_objects()) - tracked_before
    result.update(bytes_fwd=(after_forward - base) / n, bytes_bwd=(after_backward - base) / n,
                  tracked=tracked / n, full_collections=full_after - full_before)
    return result


def run_backend(name, sizes, workloads, repeats):
    backend, module = make_backend(name)
    if name == "micrograd":  # its recursive topological sort goes as deep as the graph
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 2 * max(sizes) + 10_000))
    results = {w: [measure(backend, w, n, repeats) for n in sizes] for w in workloads}
    where = sys.modules[module].__file__ if module in sys.modules else "plain floats"
    return {"backend": name, "where": where, "torch_imported": "torch" in sys.modules, "results": results}


# -- parent side -------------------------------------------------------------------

def launch(name, args):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--backend", name, "--repeats", str(args.repeats),
           "--sizes", ",".join(map(str, args.sizes)), "--workloads", ",".join(args.workloads)]
    if name == "before":
        cmd += ["--engine-root", str(Path(args.baseline).resolve())]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"backend": name, "error": f"exit {proc.returncode}: {tail}"}


def close(a, b):
    return a == b or abs(a - b) <= RTOL * max(abs(a), abs(b))


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def parent(args):
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    reports = {}
    for name in args.only:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        reports[name] = launch(name, args)
    print(f"gradparity per-node benchmark: Python {platform.python_version()} ({sys.executable})")
    print(f"{os.cpu_count()} CPUs; load average at start {' '.join(f'{x:.2f}' for x in load_start)}, "
          f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.repeats} repeats, medians; "
          f"gc at default settings {gc.get_threshold()}")
    for name, r in reports.items():
        print(f"  {name}: {r.get('where') or r.get('error')}" + ("  WARNING: torch imported" if r.get("torch_imported") else ""))
    problems = []
    ok = {n: r for n, r in reports.items() if "results" in r}
    for w in args.workloads:
        print()
        header = ["size"]
        for name in ok:
            header += [f"{name} fwd", "bwd", "ns/node", "B/node", "+bwd B", "tracked", "gen2"]
        rows = []
        for i, n in enumerate(args.sizes):
            row = [f"{w} {n:,}"]
            for name, r in ok.items():
                m = r["results"][w][i]
                row += [f"{m['fwd']:.0f}", f"{m['bwd']:.0f}", f"{m['total']:.0f}", f"{m['bytes_fwd']:.0f}",
                        f"{m['bytes_bwd'] - m['bytes_fwd']:.0f}", f"{m['tracked']:.2f}", str(m["full_collections"])]
            rows.append(row)
        print_table(header, rows)
        # agreement with the first backend
        names = list(ok)
        for i, n in enumerate(args.sizes):
            ref = ok[names[0]]["results"][w][i]
            for name in names[1:]:
                m = ok[name]["results"][w][i]
                if not close(m["output"], ref["output"]) or not all(
                        close(a, b) for a, b in zip(m["grads"], ref["grads"])):
                    problems.append(f"{w} {n}: {name} disagrees with {names[0]}")
    print()
    ratio_header = ["ratios (total ns/node)"]
    pairs = [(a, b) for a in ("engine", "before") for b in ("micrograd", "floor", "before") if a != b and a in ok and b in ok]
    ratio_header += [f"{b} / {a}" if b != "floor" else f"{a} / floor" for a, b in pairs]
    rows = []
    for w in args.workloads:
        for i, n in enumerate(args.sizes):
            row = [f"{w} {n:,}"]
            for a, b in pairs:
                ta, tb = ok[a]["results"][w][i]["total"], ok[b]["results"][w][i]["total"]
                row.append(f"{ta / tb:.2f}" if b == "floor" else f"{tb / ta:.2f}")
            rows.append(row)
    print_table(ratio_header, rows)
    if 1_000 in args.sizes and 1_000_000 in args.sizes:
        print()
        i, j = args.sizes.index(1_000), args.sizes.index(1_000_000)
        for name, r in ok.items():
            for w in args.workloads:
                a, b = r["results"][w][i], r["results"][w][j]
                print(f"flatness {name} {w}: ns/node at 1e6 / at 1e3: forward {b['fwd'] / a['fwd']:.2f}, "
                      f"backward {b['bwd'] / a['bwd']:.2f}, total {b['total'] / a['total']:.2f}")
    for p in problems:
        print("WARNING " + p)
    if not problems:
        print("all backends agree (outputs and leaf gradients to 1e-9 relative)")
    print(f"total wall time: {time.perf_counter() - t0:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": platform.python_version(), "load_start": load_start, "reports": reports}, f, indent=1)
    return 1 if problems else 0


def csv(kind, allowed=None):
    def parse(text):
        items = [kind(s.strip()) for s in text.split(",") if s.strip()]
        if not items or (allowed and any(i not in allowed for i in items)):
            raise argparse.ArgumentTypeError(f"choose from {','.join(map(str, allowed or ()))} (got {text!r})")
        return items
    return parse


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != HERE]
    sys.path.insert(0, str(ROOT))
    if "--engine-root" in argv:
        sys.path.insert(0, argv[argv.index("--engine-root") + 1])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=csv(int), default=list(SIZES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", type=csv(str, BACKENDS), default=["engine", "micrograd", "floor"])
    p.add_argument("--workloads", type=csv(str, WORKLOADS), default=list(WORKLOADS))
    p.add_argument("--baseline", metavar="DIR", help="also measure the engine of the checkout DIR (as before)")
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    p.add_argument("--engine-root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.backend:
        print(json.dumps(run_backend(args.backend, args.sizes, args.workloads, args.repeats)))
        return 0
    if args.baseline and "before" not in args.only:
        args.only.insert(1, "before")
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
