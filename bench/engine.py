#!/usr/bin/env python
"""Benchmark gradparity's engine against micrograd, torch scalars and plain floats.

    python bench/engine.py [--repeats N] [--only engine,unfused,micrograd,torch,floor,floats]
                           [--workloads mlp,dag,chain,tanh] [--baseline DIR] [--json out.json]

Two engine rows, because the MLP can be built two ways: ``engine`` is
engine.nn.MLP (one fused ``linear`` node per neuron, 14,146 nodes), and
``unfused`` is the same Value running the neuron loop every other backend runs
(``acc = acc + w * x``: the identical graph, 336,000 nodes).  On the other
workloads both build the same graph.  ``floor`` is the same computation on
plain floats with a hand-written backward (its gradients are checked against
the others'), ``floats`` its forward alone.  ``--baseline DIR`` adds the
engine found in DIR (another checkout) as ``before`` and ``before-unfused``,
to compare two versions in one run.

Every backend runs in its own subprocess (this same file, with the hidden
``--backend NAME`` flag), so that only the torch one imports torch: importing
torch makes every later garbage collection slower.  The garbage collector
keeps its default settings everywhere.  Each subprocess builds the same
seeded data, warms every workload up once, times ``--repeats`` runs and
prints one JSON line; the parent prints the medians, the ratios and whether
the backends agree.  See bench/README.md for what each workload computes.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BACKENDS = ("engine", "unfused", "micrograd", "torch", "floor", "floats")
BASELINES = ("before", "before-unfused")  # --baseline DIR's engine
LABELS = {
    "engine": "engine fused",
    "unfused": "engine identical graph",
    "before": "before fused",
    "before-unfused": "before identical graph",
    "micrograd": "micrograd",
    "torch": "torch scalars",
    "floor": "floats fwd+bwd",
    "floats": "floats fwd only",
}
INSTALL_HINT = {
    "micrograd": "not installed: pip install -e '.[bench]'",
    # The bench extra holds micrograd only; torch needs the pinned CPU wheel.
    "torch": "not installed: pip install -c requirements/constraints.txt -e '.[bench,torch]'",
    "engine": "not importable: run from a gradparity checkout or pip install -e .",
    "unfused": "not importable: run from a gradparity checkout or pip install -e .",
    "before": "not importable: --baseline must be a gradparity checkout",
    "before-unfused": "not importable: --baseline must be a gradparity checkout",
}
WORKLOADS = ("mlp", "dag", "chain", "tanh")
DESCRIPTIONS = {
    "mlp": "MLP(16, [64, 64, 1]) relu/linear, batch 32, MSE fwd+bwd",
    "dag": "random 200-op DAG (+ * relu) fwd+bwd",
    "chain": "5,000-step chain x*0.999+0.001 fwd+bwd",
    "tanh": "5,000-step chain x.tanh() fwd+bwd",
}

SEED = 20240611
MLP_SIZES = (16, 64, 64, 1)
MLP_BATCH = 32
DAG_LEAVES = 16
DAG_OPS = 200
CHAIN_STEPS = 5_000
MIN_REPEAT_SECONDS = 0.05  # shorter workloads average several runs per repeat
RTOL = 1e-9


# ---------------------------------------------------------------------------
# Data: plain floats, the same in every subprocess (seeded).

def mlp_data():
    """Weights in engine.nn's order (per neuron: its weights, then its bias)."""
    rng = random.Random(SEED)
    layers = []
    for nin, nout in zip(MLP_SIZES, MLP_SIZES[1:]):
        layer = []
        for _ in range(nout):
            weights = [rng.uniform(-1.0, 1.0) for _ in range(nin)]
            layer.append((weights, rng.uniform(-1.0, 1.0)))
        layers.append(layer)
    inputs = [[rng.uniform(-1.0, 1.0) for _ in range(MLP_SIZES[0])] for _ in range(MLP_BATCH)]
    targets = [rng.uniform(-1.0, 1.0) for _ in range(MLP_BATCH)]
    return layers, inputs, targets


def dag_data():
    """Leaf values, ops (op, i, j) on earlier nodes, and the sink nodes.

    Operands are drawn from all earlier nodes, so nodes are shared (the first
    one, half the time, from the nodes nothing uses yet, to keep the sum short).
    The output is the sum (in index order) of the sinks, the nodes that no op
    uses, so that every node reaches it; random ops are drawn until they and
    that sum's additions make exactly DAG_OPS ops.
    """
    rng = random.Random(SEED + 1)
    leaves = [rng.uniform(-1.0, 1.0) for _ in range(DAG_LEAVES)]
    ops = []
    sinks = set(range(DAG_LEAVES))
    while len(ops) + len(sinks) - 1 < DAG_OPS:
        n = DAG_LEAVES + len(ops)
        op = rng.choice(("+", "*", "relu"))
        i = rng.choice(sorted(sinks)) if rng.random() < 0.5 else rng.randrange(n)
        j = rng.randrange(n)
        left = sinks - ({i} if op == "relu" else {i, j}) | {n}
        if len(ops) + 1 + len(left) - 1 > DAG_OPS:
            continue  # would overshoot by one: draw again
        ops.append((op, i, j))
        sinks = left
    return leaves, ops, sorted(sinks)


# ---------------------------------------------------------------------------
# Backends: how each one makes a node, backpropagates and reads a gradient.
# Python's operators (+ - * / **) do everything else, in every backend.

class Ops:
    name = None
    has_grad = True
    has_tanh = True

    def leaf(self, x):
        """A node whose gradient the check reads."""
        raise NotImplementedError

    def const(self, x):
        """An input that needs no gradient."""
        return self.leaf(x)

    def relu(self, v):
        return v.relu()

    def tanh(self, v):
        return v.tanh()

    def neuron(self, weights, inputs, bias):
        # micrograd's sum((wi*xi for wi, xi in zip(w, x)), b), without sum():
        # Python 3.12+'s sum() of floats is compensated, which would give the
        # float backend a different rounding.
        acc = bias
        for w, x in zip(weights, inputs):
            acc = acc + w * x
        return acc

    def mlp(self, layers):
        """(forward(x) -> output node, parameter leaves); relu hidden layers, linear output."""
        params = [[([self.leaf(w) for w in ws], self.leaf(b)) for ws, b in layer] for layer in layers]
        last = len(params) - 1

        def forward(x):
            for i, layer in enumerate(params):
                x = [self.neuron(ws, x, b) for ws, b in layer]
                if i < last:
                    x = [self.relu(v) for v in x]
            return x[0]

        return forward, [p for layer in params for ws, b in layer for p in (*ws, b)]

    def mse(self, predictions, targets):
        pairs = iter(zip(predictions, targets))
        p, t = next(pairs)
        acc = (p - t) ** 2
        for p, t in pairs:
            acc = acc + (p - t) ** 2
        return acc / len(predictions)

    def backward(self, out):
        out.backward()

    def grad(self, leaf):
        return float(leaf.grad)

    def value(self, out):
        return float(out.data)

    def version(self):
        return ""


class UnfusedOps(Ops):
    """The engine's Value on the identical graph: Ops' neuron loop and mse."""
    name = "unfused"

    def __init__(self):
        import engine
        from engine import Value

        self._engine = engine
        self.leaf = self.const = Value

    def version(self):
        return f"{self._engine.__version__} ({Path(self._engine.__file__).parent.parent})"


class EngineOps(Ops):
    name = "engine"

    def __init__(self):
        import engine
        from engine import Value, linear
        from engine.nn import MLP, mse_loss

        self._engine, self._mlp_cls, self.mse_loss = engine, MLP, mse_loss
        self.leaf = self.const = Value
        self.neuron = linear

    def mlp(self, layers):
        """engine.nn.MLP itself (a fused linear node per neuron), with our weights."""
        sizes = [len(layers[0][0][0])] + [len(layer) for layer in layers]
        model = self._mlp_cls(sizes[0], sizes[1:], activation="relu", output_activation="linear", seed=0)
        params = model.parameters()
        flat = [v for layer in layers for ws, b in layer for v in (*ws, b)]
        if len(params) != len(flat):
            raise RuntimeError(f"engine.nn.MLP has {len(params)} parameters, expected {len(flat)}")
        for p, v in zip(params, flat):
            p.data = v
        return model, params

    def mse(self, predictions, targets):
        return self.mse_loss(predictions, targets)

    def version(self):
        return f"{self._engine.__version__} ({Path(self._engine.__file__).parent.parent})"


class MicrogradOps(Ops):
    name = "micrograd"
    has_tanh = False  # micrograd 0.1.0's Value has +, *, **number and relu only

    def __init__(self):
        from micrograd.engine import Value

        self.leaf = Value

    def version(self):
        from importlib.metadata import version

        return version("micrograd")


class TorchOps(Ops):
    name = "torch"

    def __init__(self):
        import torch

        self._torch = torch
        self._f64 = torch.float64

    def leaf(self, x):
        return self._torch.tensor(x, dtype=self._f64, requires_grad=True)

    def const(self, x):
        return self._torch.tensor(x, dtype=self._f64)

    def grad(self, leaf):
        return 0.0 if leaf.grad is None else leaf.grad.item()

    def value(self, out):
        return out.item()

    def version(self):
        return f"{self._torch.__version__}, {self._torch.get_num_threads()} threads"


class FloatOps(Ops):
    """The floor: the same forward computation on plain floats, no graph."""

    name = "floats"
    has_grad = False

    def leaf(self, x):
        return x

    def relu(self, v):
        return v if v > 0.0 else 0.0

    tanh = staticmethod(math.tanh)

    def backward(self, out):
        pass

    def value(self, out):
        return out


class FloorOps(FloatOps):
    """The floor of any autograd: plain floats, forward and a hand-written
    backward of the same computation (what one writes without an engine).
    Its gradients go through the same agreement check as every backend's."""

    name = "floor"
    has_grad = True

    def workload(self, name, data):
        return FLOOR_WORKLOADS[name](data)

    def grad(self, leaf):
        grads, i = leaf
        return grads[i]


OPS = {"engine": EngineOps, "unfused": UnfusedOps, "before": EngineOps, "before-unfused": UnfusedOps,
       "micrograd": MicrogradOps, "torch": TorchOps, "floor": FloorOps, "floats": FloatOps}


# ---------------------------------------------------------------------------
# Workloads, written once against Ops.  Each returns (run, leaves): run()
# is what gets timed (forward + backward), leaves are the nodes whose
# gradients the parent compares.  Building the leaves is not timed.

def mlp_workload(ops, data):
    layers, inputs, targets = data["mlp"]
    forward, params = ops.mlp(layers)
    xs = [[ops.const(v) for v in row] for row in inputs]

    def run():
        loss = ops.mse([forward(x) for x in xs], targets)
        ops.backward(loss)
        return loss

    return run, params


def dag_workload(ops, data):
    leaf_values, dag_ops, sinks = data["dag"]
    leaves = [ops.leaf(v) for v in leaf_values]
    relu = ops.relu

    def run():
        nodes = list(leaves)
        for op, i, j in dag_ops:
            if op == "+":
                nodes.append(nodes[i] + nodes[j])
            elif op == "*":
                nodes.append(nodes[i] * nodes[j])
            else:
                nodes.append(relu(nodes[i]))
        out = nodes[sinks[0]]
        for k in sinks[1:]:
            out = out + nodes[k]
        ops.backward(out)
        return out

    return run, leaves


def chain_workload(ops, data, step):
    x0 = ops.leaf(0.5)

    def run():
        x = x0
        for _ in range(CHAIN_STEPS):
            x = step(x)
        ops.backward(x)
        return x

    return run, [x0]


def make_workload(name, ops, data):
    if hasattr(ops, "workload"):
        return ops.workload(name, data)
    if name == "mlp":
        return mlp_workload(ops, data)
    if name == "dag":
        return dag_workload(ops, data)
    if name == "chain":
        return chain_workload(ops, data, lambda x: x * 0.999 + 0.001)
    if name == "tanh":
        return chain_workload(ops, data, ops.tanh)
    raise ValueError(name)


# ---------------------------------------------------------------------------
# The floor: each workload on floats with its backward written out by hand.
# run() returns the output; the leaves are (gradients, index) pairs into a
# list that run() fills, read after the run (not timed).

def floor_mlp(data):
    layers, inputs, targets = data["mlp"]
    weights = [[list(ws) for ws, b in layer] for layer in layers]
    biases = [[b for ws, b in layer] for layer in layers]
    last = len(layers) - 1
    n = len(inputs)
    grads = []

    def run():
        gw = [[[0.0] * len(ws) for ws in layer] for layer in weights]
        gb = [[0.0] * len(layer) for layer in biases]
        tapes, loss = [], 0.0
        for x, t in zip(inputs, targets):
            tape = [x]  # each layer's input, then the output layer's result
            for i, (ws_l, bs_l) in enumerate(zip(weights, biases)):
                h = []
                for ws, b in zip(ws_l, bs_l):
                    acc = b
                    for w, xi in zip(ws, x):
                        acc += w * xi
                    h.append(acc)
                x = [0.0 if v < 0.0 else v for v in h] if i < last else h
                tape.append(x)
            tapes.append(tape)
            loss += (x[0] - t) ** 2
        loss = loss / n
        for tape, t in zip(tapes, targets):
            g = [(1.0 / n) * (2.0 * (tape[-1][0] - t))]  # d loss / d prediction
            for i in range(last, -1, -1):
                x = tape[i]
                gx = [0.0] * len(x)
                for ws, k, gk in zip(weights[i], range(len(g)), g):
                    gb[i][k] += gk
                    gw[i][k] = [a + gk * xi for a, xi in zip(gw[i][k], x)]
                    if i:
                        gx = [a + gk * w for a, w in zip(gx, ws)]
                if i:  # relu's backward: through where its output is positive
                    g = [gi if xi > 0.0 else 0.0 for gi, xi in zip(gx, x)]
        grads[:] = [v for gw_l, gb_l in zip(gw, gb) for gws, gbk in zip(gw_l, gb_l) for v in (*gws, gbk)]
        return loss

    return run, [(grads, i) for i in range(sum(len(ws) + 1 for layer in layers for ws, b in layer))]


def floor_dag(data):
    leaf_values, dag_ops, sinks = data["dag"]
    n_leaves = len(leaf_values)
    grads = []

    def run():
        v = list(leaf_values)
        for op, i, j in dag_ops:
            if op == "+":
                v.append(v[i] + v[j])
            elif op == "*":
                v.append(v[i] * v[j])
            else:
                x = v[i]
                v.append(0.0 if x < 0.0 else x)
        out = v[sinks[0]]
        for k in sinks[1:]:
            out = out + v[k]
        g = [0.0] * len(v)
        for k in sinks:
            g[k] = 1.0
        for n in range(len(v) - 1, n_leaves - 1, -1):
            gn = g[n]
            op, i, j = dag_ops[n - n_leaves]
            if op == "+":
                g[i] += gn
                g[j] += gn
            elif op == "*":
                g[i] += gn * v[j]
                g[j] += gn * v[i]
            elif v[n] > 0.0:
                g[i] += gn
        grads[:] = g[:n_leaves]
        return out

    return run, [(grads, i) for i in range(n_leaves)]


def floor_chain(data):
    grads = [0.0]

    def run():
        x = 0.5
        for _ in range(CHAIN_STEPS):
            x = x * 0.999 + 0.001
        g = 1.0
        for _ in range(CHAIN_STEPS):
            g = g * 0.999
        grads[0] = g
        return x

    return run, [(grads, 0)]


def floor_tanh(data):
    grads = [0.0]
    tanh = math.tanh

    def run():
        x = 0.5
        ys = []
        for _ in range(CHAIN_STEPS):
            x = tanh(x)
            ys.append(x)
        g = 1.0
        for y in reversed(ys):
            g = g * (1.0 - y * y)
        grads[0] = g
        return x

    return run, [(grads, 0)]


FLOOR_WORKLOADS = {"mlp": floor_mlp, "dag": floor_dag, "chain": floor_chain, "tanh": floor_tanh}


# ---------------------------------------------------------------------------
# Subprocess side: time one backend, print one JSON line.

def time_workload(name, ops, data, repeats):
    if name == "tanh" and not ops.has_tanh:
        return {"status": f"n/a (no tanh in {ops.name})"}

    def once():
        run, leaves = make_workload(name, ops, data)
        t0 = time.perf_counter()
        out = run()
        return time.perf_counter() - t0, out, leaves

    try:
        warmup, out, leaves = once()
    except RecursionError:
        return {"status": "RecursionError"}
    result = {
        "status": "ok",
        "output": ops.value(out),
        "grads": [ops.grad(leaf) for leaf in leaves] if ops.has_grad else None,
    }
    del out, leaves
    # Sub-MIN_REPEAT_SECONDS workloads: each repeat is the mean of `inner` runs.
    inner = max(1, min(10_000, math.ceil(MIN_REPEAT_SECONDS / max(warmup, 1e-9))))
    times = []
    for _ in range(repeats):
        gc.collect()  # drop the previous repeat's graphs (untimed); gc stays enabled
        times.append(sum(once()[0] for _ in range(inner)) / inner)
    result.update(median=statistics.median(times), min=min(times), times=times, inner=inner)
    return result


def run_backend(name, repeats, workloads, recursion_limit):
    report = {"backend": name, "gc_enabled": gc.isenabled(), "gc_threshold": gc.get_threshold()}
    try:
        ops = OPS[name]()
    except ImportError as exc:
        report.update(status=INSTALL_HINT[name], error=str(exc))
        return report
    notes = []
    if name == "micrograd" and recursion_limit:
        sys.setrecursionlimit(recursion_limit)
        notes.append(f"sys.setrecursionlimit({recursion_limit})")
    data = {"mlp": mlp_data(), "dag": dag_data()}
    results = {}
    for workload in workloads:
        try:
            results[workload] = time_workload(workload, ops, data, repeats)
        except Exception as exc:  # report, don't crash the whole table
            results[workload] = {"status": f"error: {type(exc).__name__}: {exc}"}
    report.update(
        status="ok",
        version=ops.version(),
        notes=notes,
        recursion_limit=sys.getrecursionlimit(),
        torch_imported="torch" in sys.modules,
        workloads=results,
    )
    return report


# ---------------------------------------------------------------------------
# Parent side: launch the subprocesses, check agreement, print the table.

def launch(name, args):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--backend", name,
           "--repeats", str(args.repeats), "--workloads", ",".join(args.workloads)]
    if args.micrograd_recursion_limit:
        cmd += ["--micrograd-recursion-limit", str(args.micrograd_recursion_limit)]
    if name in BASELINES:
        cmd += ["--engine-root", str(Path(args.baseline).resolve())]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"backend": name, "status": f"crashed (exit {proc.returncode}): {tail}"}


def rel_diff(a, b):
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def grads_diff(a, b):
    """Largest elementwise difference, relative to max(|a_i|, |b_i|) but never
    to less than the gradients' largest magnitude times 1e-3 (a near-zero
    gradient is a sum that cancels, and backends sum in different orders)."""
    floor = 1e-3 * max(map(abs, a + b), default=0.0)
    return max((abs(x - y) / max(abs(x), abs(y), floor) for x, y in zip(a, b) if x != y), default=0.0)


def check_agreement(reports, workloads):
    """[(workload, backend, message)] for every backend that disagrees with the reference."""
    problems = []
    for w in workloads:
        ok = [(n, r["workloads"][w]) for n, r in reports.items()
              if r.get("status") == "ok" and r["workloads"].get(w, {}).get("status") == "ok"]
        if len(ok) < 2:
            continue
        ref_name, ref = ok[0]  # engine whenever it ran
        ref_grads = next(((n, res["grads"]) for n, res in ok if res["grads"] is not None), None)
        for name, res in ok[1:]:
            d = rel_diff(res["output"], ref["output"])
            if not d <= RTOL:
                problems.append((w, name, f"output {res['output']!r} vs {ref_name} {ref['output']!r} (rel diff {d:.1e})"))
        if ref_grads is None:
            continue
        for name, res in ok:
            if res["grads"] is None or name == ref_grads[0]:
                continue
            if len(res["grads"]) != len(ref_grads[1]):
                problems.append((w, name, f"{len(res['grads'])} gradients vs {len(ref_grads[1])} in {ref_grads[0]}"))
                continue
            d = grads_diff(res["grads"], ref_grads[1])
            if not d <= RTOL:
                problems.append((w, name, f"gradients differ from {ref_grads[0]} (max rel diff {d:.1e})"))
    return problems


def fmt_time(seconds):
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_ratio(engine_time, other_time):
    r = engine_time / other_time
    return f"{1 / r:.1f}x faster" if r < 1 else f"{r:.1f}x slower"


def cell(report, workload):
    if report.get("status") != "ok":
        return report.get("status", "?")
    res = report["workloads"].get(workload, {"status": "-"})
    if res["status"] != "ok":
        return res["status"]
    return f"{fmt_time(res['median'])} (min {fmt_time(res['min'])})"


def median_of(report, workload):
    if report and report.get("status") == "ok":
        res = report["workloads"].get(workload, {})
        if res.get("status") == "ok":
            return res["median"]
    return None


def print_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def load_average():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


ENGINE_ROWS = ("engine", "unfused", "before", "before-unfused")
OTHERS = ("micrograd", "torch", "floor", "floats")


def ratio_rows(reports, workloads):
    """One row per (engine row, workload): its median against every other
    backend's, and the targets of issue 16 judged on them."""
    rows, targets = [], []
    for name in ENGINE_ROWS:
        for w in workloads:
            eng = median_of(reports.get(name), w)
            if eng is None:
                continue
            row = [f"{LABELS[name]}, {w}"]
            for other in OTHERS:
                t = median_of(reports.get(other), w)
                row.append(fmt_ratio(eng, t) if t is not None else "-")
            rows.append(row)
    for w in workloads:
        eng = median_of(reports.get("unfused"), w)
        mg = median_of(reports.get("micrograd"), w)
        if eng is not None and mg is not None:
            targets.append(f"identical graph >= 10x faster than micrograd on {w}: {mg / eng:.1f}x -> "
                           f"{'MET' if mg / eng >= 10 else 'MISSED'}")
    for w in ("mlp", "dag"):
        floor = median_of(reports.get("floor"), w)
        for name in ("engine", "unfused"):
            eng = median_of(reports.get(name), w)
            if w in workloads and eng is not None and floor is not None:
                targets.append(f"{LABELS[name]} <= 2x the float fwd+bwd floor on {w}: {eng / floor:.1f}x -> "
                               f"{'MET' if eng / floor <= 2 else 'MISSED'}")
    return rows, targets


def parent(args):
    t0 = time.perf_counter()
    reports = {}
    for name in args.only:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        reports[name] = launch(name, args)
    problems = check_agreement(reports, args.workloads)

    print(f"gradparity engine benchmark: Python {platform.python_version()} "
          f"({platform.python_implementation()}, {sys.executable})")
    print(f"machine: {platform.system()} {platform.release()} {platform.machine()}, "
          f"{cpu_model()}, {os.cpu_count()} CPUs")
    print(f"{args.repeats} repeats after 1 warm-up; median (min) of forward+backward wall time "
          f"(floats fwd only: forward only); gc at default settings; load average {load_average()}")
    for name, r in reports.items():
        extra = []
        if r.get("version"):
            extra.append(r["version"])
        extra += r.get("notes", [])
        if r.get("status") == "ok" and name != "torch" and r.get("torch_imported"):
            extra.append("WARNING: torch was imported")
        if extra:
            print(f"  {LABELS[name]}: {'; '.join(extra)}")
    print()
    header = ["workload"] + [LABELS[n] for n in args.only]
    rows = [[w] + [cell(reports[n], w) for n in args.only] for w in args.workloads]
    for w, name, msg in problems:
        rows.append([f"WARNING {w}", f"{LABELS[name]} disagrees: {msg}"])
    print_table(header, rows)

    if any(n in reports for n in ENGINE_ROWS) and len(reports) > 1:
        rows, targets = ratio_rows(reports, args.workloads)
        print()
        print_table(["row, workload", "than micrograd", "than torch scalars", "than floats fwd+bwd",
                     "than floats fwd only"], rows)
        if targets:
            print()
            for t in targets:
                print("target: " + t)
    print()
    for w in args.workloads:
        print(f"  {w}: {DESCRIPTIONS[w]}")
    for name, r in reports.items():
        if any(res.get("status") == "RecursionError" for res in r.get("workloads", {}).values()):
            print(f"  RecursionError: {LABELS[name]}'s recursive topological sort is deeper than its "
                  f"recursion limit ({r['recursion_limit']}); --micrograd-recursion-limit 30000 times it anyway")
    if not problems:
        print("  all backends agree on outputs (and gradients) to 1e-9 relative")
    elapsed = time.perf_counter() - t0
    print(f"total wall time: {elapsed:.1f} s")

    if args.json:
        meta = {"python": platform.python_version(), "executable": sys.executable,
                "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
                "cpu": cpu_model(), "cpus": os.cpu_count(), "repeats": args.repeats,
                "total_seconds": elapsed}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "backends": reports,
                       "disagreements": [dict(zip(("workload", "backend", "message"), p)) for p in problems]},
                      f, indent=1)
        print(f"wrote {args.json}")
    return 1 if problems else 0


def csv_choices(allowed):
    def parse(text):
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)} (got {text!r})")
        return items
    return parse


def main(argv=None):
    # `python bench/engine.py` puts bench/ first on sys.path, where this very
    # file would shadow the engine package: look in the checkout instead.
    sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != HERE]
    sys.path.insert(0, str(ROOT))
    if "--engine-root" in (argv if argv is not None else sys.argv):  # --baseline's subprocess
        args = sys.argv[1:] if argv is None else argv
        sys.path.insert(0, args[args.index("--engine-root") + 1])

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per workload (default 5)")
    p.add_argument("--only", type=csv_choices(BACKENDS), default=list(BACKENDS),
                   help=f"backends to run (default {','.join(BACKENDS)})")
    p.add_argument("--workloads", type=csv_choices(WORKLOADS), default=list(WORKLOADS),
                   help=f"workloads to run (default {','.join(WORKLOADS)})")
    p.add_argument("--json", metavar="OUT", help="also write all results to this JSON file")
    p.add_argument("--baseline", metavar="DIR",
                   help="also time the engine of the checkout DIR (as before, before-unfused)")
    p.add_argument("--engine-root", help=argparse.SUPPRESS)
    p.add_argument("--micrograd-recursion-limit", type=int, metavar="N",
                   help="raise sys.setrecursionlimit to N in micrograd's process only "
                        "(its recursive topological sort fails on the 5,000-step chains otherwise)")
    p.add_argument("--backend", choices=BACKENDS + BASELINES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.baseline and not args.backend:
        if not (Path(args.baseline) / "engine" / "__init__.py").is_file():
            p.error(f"--baseline {args.baseline}: no engine/ there")
        engines = [n for n in args.only if n in ("engine", "unfused")]
        args.only = engines + [b for b, n in zip(BASELINES, ("engine", "unfused")) if n in engines] + [
            n for n in args.only if n not in engines]
    if args.backend:
        print(json.dumps(run_backend(args.backend, args.repeats, args.workloads, args.micrograd_recursion_limit)))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
