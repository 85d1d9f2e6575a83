#!/usr/bin/env python
"""How fast does the harness verify cases?  The real pipeline against a naive one.

    python bench/harness.py [--cases N] [--draws 16,64,256] [--repeats N] [--seed S] [--json OUT]

Workload: expr cases of exactly 200 ops (random DAGs, every op of the table,
``draws_per_graph`` leaf draws per graph structure), built once per
``--draws`` setting and not timed.  Two harnesses check the same cases, one
after the other in every repeat, in one process on one core
(``torch.set_num_threads(1)``):

- verified: ``parity.runner.run_cases`` with our engine, ``TorchBackend``
  (cases of one structure run as one batch), the mpmath ``OracleBackend``
  (consulted only when engine and torch disagree) and the default
  ``Tolerances``: the verdicts and rows ``parity run`` produces.  Rows are
  counted and dropped, as a streaming CSV writer would.
- naive: one case at a time, as a hand-written check would do it: 0-d
  float64 torch tensors with ``requires_grad=True``, the graph evaluated op
  by op (``op.apply_torch``), ``backward()``, ``.item()`` per value and
  gradient; the engine the same way (``op.apply_engine``); every quantity
  compared with ``compare.close`` at the default tolerances.  No oracle, no
  timeouts, no rows: it only counts disagreements.

Per setting: the median cases/s of each harness over ``--repeats`` runs, the
ratio, the verdict counts, and how many cases consulted the oracle (and the
share of the verified time spent in it).  Targets: 2,000 verified cases/s,
at least 5x the naive harness.  See bench/README.md.
"""
import argparse
from collections import Counter
import json
import math
import operator
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's engine and parity, not an installed copy

import torch  # noqa: E402

import engine  # noqa: E402
from parity.backends.engine import load_engine  # noqa: E402
from parity.backends.oracle import OracleBackend  # noqa: E402
from parity.backends.torch import TorchBackend  # noqa: E402
from parity.cases import build_cases  # noqa: E402
from parity.compare import Tolerances, close  # noqa: E402
from parity.generate import ExprConfig  # noqa: E402
from parity.ops import OP_NAMES  # noqa: E402
from parity.runner import run_cases  # noqa: E402

N_OPS = 200
TARGET_RATE = 2000.0
TARGET_RATIO = 5.0


def expr_config(draws):
    """Every expr case a 200-op DAG, ``draws`` leaf draws per structure
    (bench/overhead.py runs the same workload through `parity run`)."""
    return ExprConfig(min_nodes=N_OPS, max_nodes=N_OPS, ops=OP_NAMES, shape="dag", draws_per_graph=draws)


def make_cases(n, draws, seed):
    return build_cases("expr", seed, n, expr_config(draws))


class TimedOracle:
    """The oracle, with the time spent in it (compare.judge calls run, then spread)."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.seconds = 0.0

    def run(self, case):
        start = time.perf_counter()
        try:
            return self.oracle.run(case)
        finally:
            self.seconds += time.perf_counter() - start

    def spread(self, case, trials=8):
        start = time.perf_counter()
        try:
            return self.oracle.spread(case, trials=trials)
        finally:
            self.seconds += time.perf_counter() - start


def verified(cases, engine_backend, torch_backend, oracle):
    """(seconds, verdict counts, oracle consultations, seconds in the oracle)."""
    timed = TimedOracle(oracle)
    verdicts = Counter()
    consulted = 0
    start = time.perf_counter()
    for row in run_cases(cases, engine_backend, torch_backend, timed, Tolerances()):
        verdicts[row["verdict"]] += 1
        consulted += row["oracle_consulted"]
    return time.perf_counter() - start, verdicts, consulted, timed.seconds


def _apply_torch(op, operands, const):
    return op.apply_torch(operands, const)


def _apply_engine(op, operands, const):
    return op.apply_engine(operands, const)


def naive_case(case, atol, rtol):
    """Whether torch scalars and the engine agree on every value and gradient."""
    graph = case.graph
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in case.leaves]
    values, loss = graph.evaluate(leaves, _apply_torch, operator.add)
    loss.backward()
    torch_quantities = ([values[o].item() for o in graph.outputs] + [loss.item()]
                        + [0.0 if leaf.grad is None else leaf.grad.item() for leaf in leaves])
    leaves = [engine.Value(x) for x in case.leaves]
    values, loss = graph.evaluate(leaves, _apply_engine, operator.add)
    loss.backward()
    engine_quantities = ([values[o].data for o in graph.outputs] + [loss.data]
                         + [leaf.grad for leaf in leaves])
    return all(close(e, t, atol, rtol) for e, t in zip(engine_quantities, torch_quantities))


def naive(cases):
    """(seconds, disagreements)."""
    tol = Tolerances()
    start = time.perf_counter()
    disagreements = sum(not naive_case(case, tol.atol, tol.rtol) for case in cases)
    return time.perf_counter() - start, disagreements


def measure(n, n_naive, draws, seed, repeats, backends, log):
    start = time.perf_counter()
    cases = make_cases(n, draws, seed)
    build_seconds = time.perf_counter() - start
    naive_cases = cases[:n_naive]
    # Warm-up, untimed: torch's first ops, the engine's op probes, caches.
    warm = make_cases(draws, draws, seed + 1)
    verified(warm, *backends)
    naive(warm)

    runs = []
    for repeat in range(repeats):
        v_seconds, verdicts, consulted, oracle_seconds = verified(cases, *backends)
        n_seconds, disagreements = naive(naive_cases)
        runs.append({"verified_seconds": v_seconds, "naive_seconds": n_seconds,
                     "oracle_seconds": oracle_seconds, "verdicts": dict(verdicts),
                     "oracle_consulted": consulted, "naive_disagreements": disagreements})
        log(f"  draws {draws:>4}  repeat {repeat + 1}/{repeats}: verified {n / v_seconds:8.0f}/s "
            f"(oracle {consulted} cases, {oracle_seconds:.2f} s), naive {len(naive_cases) / n_seconds:6.0f}/s")
    v_rate = statistics.median(n / r["verified_seconds"] for r in runs)
    n_rate = statistics.median(len(naive_cases) / r["naive_seconds"] for r in runs)
    no_oracle = statistics.median(n / (r["verified_seconds"] - r["oracle_seconds"]) for r in runs)
    return {
        "draws_per_graph": draws, "cases": n, "naive_cases": len(naive_cases), "structures": math.ceil(n / draws),
        "build_seconds": build_seconds,
        "verified_cases_per_second": v_rate, "naive_cases_per_second": n_rate, "ratio": v_rate / n_rate,
        "verified_cases_per_second_without_oracle": no_oracle,
        "verdicts": runs[-1]["verdicts"], "oracle_consulted": runs[-1]["oracle_consulted"],
        "oracle_share": statistics.median(r["oracle_seconds"] / r["verified_seconds"] for r in runs),
        "naive_disagreements": runs[-1]["naive_disagreements"], "runs": runs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=8192,
                        help="verified cases per draws setting (default 8192: enough structures for "
                             "a steady oracle consultation rate)")
    parser.add_argument("--naive-cases", type=int, default=2048,
                        help="the naive harness checks the first N of them (default 2048): its cost "
                             "per case does not depend on the draws or the oracle, only its total does")
    parser.add_argument("--draws", default="16,64,256",
                        help="draws_per_graph settings, comma-separated (default 16,64,256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per setting (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="the expr family's seed (default 0)")
    parser.add_argument("--json", metavar="OUT", help="write every figure and run to OUT")
    args = parser.parse_args(argv)
    draws_settings = [int(d) for d in args.draws.split(",")]

    torch.set_num_threads(1)  # one core: no intra-op threads
    backends = (load_engine("engine"), TorchBackend(), OracleBackend())
    header = (f"gradparity harness benchmark: {args.cases} expr cases of {N_OPS} ops per setting "
              f"(naive: the first {min(args.naive_cases, args.cases)}), "
              f"seed {args.seed}, median of {args.repeats}; Python {platform.python_version()}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} torch thread, one process")
    print(header, flush=True)

    def log(line):
        print(line, file=sys.stderr, flush=True)

    results = [measure(args.cases, min(args.naive_cases, args.cases), d, args.seed, args.repeats, backends, log)
               for d in draws_settings]

    print()
    print(f"{'draws':>6} {'verified/s':>11} {'naive/s':>8} {'ratio':>6} {'oracle cases':>13} "
          f"{'oracle time':>12} {'w/o oracle/s':>13}  verdicts")
    for r in results:
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(r["verdicts"].items()))
        print(f"{r['draws_per_graph']:>6} {r['verified_cases_per_second']:>11.0f} "
              f"{r['naive_cases_per_second']:>8.0f} {r['ratio']:>5.1f}x {r['oracle_consulted']:>13} "
              f"{r['oracle_share']:>11.0%} {r['verified_cases_per_second_without_oracle']:>13.0f}  {verdicts}")
    best = max(results, key=lambda r: r["verified_cases_per_second"])
    met = best["verified_cases_per_second"] >= TARGET_RATE and best["ratio"] >= TARGET_RATIO
    print(f"\nbest: draws {best['draws_per_graph']}, {best['verified_cases_per_second']:.0f} verified cases/s, "
          f"{best['ratio']:.1f}x naive (targets {TARGET_RATE:.0f}/s and {TARGET_RATIO:.0f}x: "
          f"{'met' if met else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "ops": N_OPS, "seed": args.seed, "repeats": args.repeats, "torch": torch.__version__,
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "results": results,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
