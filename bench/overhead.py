#!/usr/bin/env python
"""Where a `parity run` spends its CPU time, against the engine under test's.

    python bench/overhead.py [--workloads dag,default] [--repeats 5] [--dag-cases N] [--draws 16]
                             [--levers per-group,no-freeze,torch-threads,draws=64,draws=256]
                             [--baseline DIR] [--isolation process|auto] [--quiet-runs] [--json OUT]

Each run is a fresh process (this file with a hidden ``--child`` flag) that
runs ``parity.cli.main(["run", ...])`` - the real pipeline: CLI, engine
loading and probes, the judge's self-check, the plan, torch, the oracle,
the comparison, the CSV partial, the ordered report and its sidecar - with
timing wrappers put around the pipeline's functions from outside (no timing
code in the product).  The engine under test runs in its sandboxed worker
(``--isolation process``, the default here), started through a bootstrap of
this file's that wraps the worker's functions the same way: the engine is
timed in a process that never imports torch (the worker reports whether
it did).

Workloads:
- dag: ``parity run --families expr --cases N`` with every expr case a
  200-op random DAG (bench/harness.py's config, ``--draws`` leaf draws per
  structure), the workload of bench/harness.py run as `parity run` runs it.
- default: ``parity run`` with its default arguments (8,519 cases, every
  default family).  ``--isolation auto`` runs it as shipped (our engine in
  the harness's process, so timed beside torch).

CPU time (``time.process_time``: this machine runs other jobs), charged to
the innermost wrapper running, per process:

  harness process: start-up (interpreter, imports, torch, CLI, engine
    loading and probes, self-check, sidecar; until the first case),
    generation (building cases), torch (its results, batched), torch
    spread (the judge's rounding estimate), oracle, judge (compare.judge
    and the verdicts, less torch and oracle), rows (report rows, replay
    commands), I/O (the CSV partial, the ordered report, the sidecar), IPC
    (sending cases, reading and checking replies), loop (the run loop
    itself, progress), finish (after the last row: diagnosis, closing, the
    summary), collector (the cycle collector's passes).
  engine worker: engine (each case's forward and backward: the engine's
    calls, the graph walked node by node, leaves made and read), engine
    collector (collections the engine's objects set off: the engine's time
    too), worker loop (per-case time limit, CPU limit, a graph's compiled
    forward, result lists), worker IPC (JSON in and out, the socket),
    worker start-up (interpreter, limits, the engine's import, probes),
    worker collector.

Harness overhead is everything but the engine: the ratio overhead / engine
is the issue's target (0.6x), with and without start-up.  Medians over
``--repeats`` fresh runs, the variants taking turns in each repeat; the
total of the buckets is checked against the CPU time the OS counted for
the run (``getrusage(RUSAGE_CHILDREN)``: the buckets miss the processes'
exits and `git describe`).  ``--baseline DIR`` runs the same workloads on
another checkout (the "before" columns); ``--levers`` runs them with one
change at a time undone, or at other leaf draws.  See bench/README.md.
"""
import argparse
from collections import defaultdict
import contextlib
import dataclasses
import functools
import gc
import json
import os
from pathlib import Path
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()
TARGET = 0.6

MAIN_BUCKETS = ("start-up", "generation", "torch", "torch spread", "oracle", "judge", "rows", "I/O", "IPC",
                "loop", "finish", "collector")
WORKER_BUCKETS = ("engine", "engine collector", "worker loop", "worker IPC", "worker start-up", "worker collector")
ENGINE = ("engine", "engine collector")  # the engine's time: its calls, and the collections its objects set off


class Clock:
    """CPU time charged to named buckets: the innermost entered bucket runs
    the clock; below the stack, a base bucket (what the process is doing
    between wrapped calls)."""

    def __init__(self, base):
        self.seconds = defaultdict(float)
        self.stack = [base]
        self.last = 0.0  # process_time counts from the process's start: the first charge covers it

    def _charge(self):
        now = time.process_time()
        self.seconds[self.stack[-1]] += now - self.last
        self.last = now

    def enter(self, name):
        self._charge()
        self.stack.append(name)

    def leave(self):
        self._charge()
        self.stack.pop()

    def set_base(self, name):
        self._charge()
        self.stack[0] = name

    def totals(self):
        self._charge()
        return dict(self.seconds)


def timed(clock, name, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        clock.enter(name)
        try:
            return function(*args, **kwargs)
        finally:
            clock.leave()
    return wrapper


def timed_iterator(clock, name, iterator):
    """Each step of ``iterator`` charged to ``name``."""
    iterator = iter(iterator)
    while True:
        clock.enter(name)
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            clock.leave()
        yield item


def wrap(owner, attribute, clock, name):
    setattr(owner, attribute, timed(clock, name, getattr(owner, attribute)))


def time_collections(clock, name):
    """The cycle collector's passes charged to ``name``, whatever code
    allocated the object that set them off - but those the engine's own
    objects set off, which are the engine's time (bench/engine.py times it
    with the collector on), shown apart as "engine collector" (what else
    the worker holds meanwhile, the cases of a request, makes them
    longer)."""
    def callback(phase, info):
        if phase == "start":
            clock.enter("engine collector" if clock.stack[-1] == "engine" else name)
        else:
            clock.leave()
    gc.callbacks.append(callback)


# -- the engine's worker ---------------------------------------------------------------
def worker_bootstrap(out_dir):
    """sandbox/worker.py's bootstrap, through worker_main (this file loaded
    by its path: bench/ holds an engine.py that must not shadow ours)."""
    return ("import sys; sys.path[:0] = sys.argv[3:]; import importlib.util as u; "
            f"s = u.spec_from_file_location('parity_overhead_bench', {str(THIS)!r}); m = u.module_from_spec(s); "
            f"s.loader.exec_module(m); m.worker_main(int(sys.argv[1]), int(sys.argv[2]), {str(out_dir)!r})")


def worker_main(fd, progress_fd, out_dir):
    """The worker's main, timed; its buckets go to OUT_DIR/worker-PID.json at its end."""
    clock = Clock("worker start-up")
    from multiprocessing.connection import Connection

    from parity.sandbox import engine_runner, wire, worker

    time_engine_calls(clock)
    iter_results = engine_runner.EngineRunner.iter_results

    def iter_results_timed(self, *args, **kwargs):
        clock.set_base("worker loop")
        yield from iter_results(self, *args, **kwargs)
    engine_runner.EngineRunner.iter_results = iter_results_timed
    for name in ("loads", "dumps", "decode_cases"):
        wrap(wire, name, clock, "worker IPC")
    for name in ("send_bytes", "recv_bytes"):
        wrap(Connection, name, clock, "worker IPC")
    time_collections(clock, "worker collector")
    try:
        worker.main(fd, progress_fd)
    finally:
        totals = clock.totals()
        totals["torch imported"] = "torch" in sys.modules
        Path(out_dir, f"worker-{os.getpid()}.json").write_text(json.dumps(totals))


def time_engine_calls(clock):
    """Each case's call into the engine (EngineRunner._guarded's) charged to "engine"."""
    from parity.sandbox import engine_runner

    guarded = engine_runner.EngineRunner._guarded

    def _guarded(self, compute, case):
        return guarded(self, timed(clock, "engine", compute), case)
    engine_runner.EngineRunner._guarded = _guarded


# -- the harness's process -------------------------------------------------------------
def instrument(clock, worker_dir):
    """Timing wrappers around the pipeline's functions (see the module doc)."""
    import parity.campaign
    import parity.cases
    import parity.isolation
    import parity.runner
    from parity.backends.engine import EngineBackend
    from parity.backends.oracle import OracleBackend
    from parity.backends.torch import TorchBackend
    from parity.plan import RunSpec
    from parity.report_files import RowWriter

    parity.isolation.BOOTSTRAP = worker_bootstrap(worker_dir)

    iter_cases = parity.cases.iter_cases
    parity.cases.iter_cases = lambda *a, **k: timed_iterator(clock, "generation", iter_cases(*a, **k))
    wrap(TorchBackend, "run_batch", clock, "torch")
    wrap(TorchBackend, "rounding_spread", clock, "torch spread")
    for name in ("run", "spread"):
        wrap(OracleBackend, name, clock, "oracle")
    wrap(parity.runner, "_verdicts", clock, "judge")
    wrap(parity.runner._RowMaker, "make", clock, "rows")
    wrap(RunSpec, "replay_command", clock, "rows")
    wrap(RowWriter, "write_all", clock, "I/O")
    for name in ("write_ordered", "write_atomic"):
        wrap(parity.campaign, name, clock, "I/O")

    submit = EngineBackend.submit

    def submit_timed(self, cases):
        return timed(clock, "IPC", submit(self, cases))
    EngineBackend.submit = timed(clock, "IPC", submit_timed)

    time_engine_calls(clock)  # the engine in this process (--isolation auto)

    rows_in_process = parity.campaign.rows_in_process

    def rows_timed(*args, **kwargs):
        clock.set_base("loop")
        try:
            yield from rows_in_process(*args, **kwargs)
        finally:
            clock.set_base("finish")
    parity.campaign.rows_in_process = rows_timed


def dag_config(draws):
    """bench/harness.py's 200-op DAG config (imported lazily: it imports torch)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("parity_harness_bench", THIS.parent / "harness.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    return harness.expr_config(draws)


def child(args):
    clock = Clock("start-up")
    sys.path.insert(0, args.root)  # the checkout measured, before bench/ (whose engine.py is not ours)
    import torch  # noqa: F401  (start-up: the CLI imports it anyway, torch being the reference)
    worker_dir = tempfile.mkdtemp(prefix="parity-overhead-")
    instrument(clock, worker_dir)
    time_collections(clock, "collector")
    import parity.judges
    import parity.runner
    from parity.cli import main
    from parity.plan import RunSpec

    if args.request_cost is not None:
        parity.runner.REQUEST_COST = int(args.request_cost)
    if args.no_freeze:
        parity.judges._long_lived_frozen = contextlib.nullcontext
    if args.torch_threads:
        import parity.backends.torch as torch_backend
        spread, single_threaded = torch_backend.TorchBackend.rounding_spread, torch_backend._single_threaded
        torch_backend._single_threaded = contextlib.nullcontext

        def rounding_spread(*args, **kwargs):
            with single_threaded():
                return spread(*args, **kwargs)
        torch_backend.TorchBackend.rounding_spread = rounding_spread
    argv = ["run", "--quiet", "--isolation", args.isolation]
    if args.child == "dag":
        # As the CLI's knobs come: a dict (an ExprConfig would be copied by asdict for every case).
        config = dataclasses.asdict(dag_config(int(args.draws)))
        RunSpec.config = lambda spec: config
        argv += ["--families", "expr", "--cases", str(args.dag_cases)]
    with tempfile.TemporaryDirectory(prefix="parity-overhead-run-") as out:
        with open(os.devnull, "w") as devnull:
            stdout, sys.stdout = sys.stdout, devnull
            try:
                status = main(argv + ["--out", os.path.join(out, "run.csv")])
            finally:
                sys.stdout = stdout
        rows = sum(1 for _ in open(os.path.join(out, "run.csv"))) - 1
    result = {"main": clock.totals(), "status": status, "rows": rows, "workers": [],
              "parity": str(Path(parity.runner.__file__).parent)}
    for path in Path(worker_dir).glob("worker-*.json"):
        result["workers"].append(json.loads(path.read_text()))
        path.unlink()
    os.rmdir(worker_dir)
    Path(args.child_out).write_text(json.dumps(result))
    return 0


def run_child(variant, args):
    """One fresh `parity run` of a variant: its buckets, and the CPU time the OS counted."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as file:
        out = file.name
    command = [sys.executable, str(THIS), "--child", variant["workload"], "--child-out", out,
               "--isolation", args.isolation, "--dag-cases", str(args.dag_cases), "--draws", str(variant["draws"]),
               "--root", variant["root"], *variant["flags"]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": variant["root"]},
                   cwd=tempfile.gettempdir(), stderr=subprocess.DEVNULL if args.quiet_runs else None)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    result["os_seconds"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def split(result):
    """{bucket: seconds} of one run, the workers' summed (the engine's in
    the harness's process too, where it runs there: --isolation auto)."""
    buckets = {name: result["main"].get(name, 0.0) for name in MAIN_BUCKETS + WORKER_BUCKETS}
    for name in WORKER_BUCKETS:
        buckets[name] += sum(w.get(name, 0.0) for w in result["workers"])
    return buckets


def ratios(buckets):
    engine = sum(buckets[name] for name in ENGINE)
    total = sum(buckets.values())
    overhead = total - engine
    startup = buckets["start-up"] + buckets["worker start-up"]
    return {"total": total, "engine": engine, "overhead": overhead, "ratio": overhead / engine,
            "ratio_without_startup": (overhead - startup) / engine}


def measure(variants, args, log):
    """Each variant's runs, the variants taking turns in every repeat (a
    change in the machine's load then touches them all alike)."""
    runs = {v["label"]: [] for v in variants}
    for repeat in range(args.repeats):
        for variant in variants:
            result = run_child(variant, args)
            buckets = split(result)
            figures = ratios(buckets)
            runs[variant["label"]].append({
                "buckets": buckets, **figures, "os_seconds": result["os_seconds"], "rows": result["rows"],
                "status": result["status"], "workers": len(result["workers"]), "parity": result["parity"],
                "worker_imported_torch": any(w.get("torch imported") for w in result["workers"]),
                "load": os.getloadavg()[0]})
            log(f"  {variant['label']} {repeat + 1}/{args.repeats}: {figures['total']:.2f} s CPU in buckets "
                f"({result['os_seconds']:.2f} s counted by the OS), engine {figures['engine']:.2f} s, "
                f"overhead {figures['ratio']:.2f}x ({figures['ratio_without_startup']:.2f}x without start-up), "
                f"load {os.getloadavg()[0]:.2f}")
    results = []
    for variant in variants:
        vruns = runs[variant["label"]]
        median = {name: statistics.median(r["buckets"][name] for r in vruns) for name in vruns[0]["buckets"]}
        results.append({**variant, "runs": vruns, "median": median,
                        "ratio": statistics.median(r["ratio"] for r in vruns),
                        "ratio_without_startup": statistics.median(r["ratio_without_startup"] for r in vruns),
                        "total": statistics.median(r["total"] for r in vruns),
                        "engine": statistics.median(r["engine"] for r in vruns),
                        "os_seconds": statistics.median(r["os_seconds"] for r in vruns),
                        "rows": vruns[0]["rows"],
                        "worker_imported_torch": any(r["worker_imported_torch"] for r in vruns)})
    return results


def table(results):
    names = MAIN_BUCKETS + WORKER_BUCKETS
    width = max(16, *(len(r["label"]) + 2 for r in results))
    lines = [f"{'CPU s (x engine)':<17}" + "".join(f"{r['label']:>{width}}" for r in results)]
    for name in names:
        cells = []
        for r in results:
            value = r["median"][name]
            cells.append(f"{value:6.2f} {value / r['engine']:5.2f}x".rjust(width))
        lines.append(f"{name:<17}" + "".join(cells))

    def row(title, cell):
        lines.append(f"{title:<17}" + "".join(cell(r).rjust(width) for r in results))
    row("total", lambda r: f"{r['total']:6.2f}       ")
    row("counted by OS", lambda r: f"{r['os_seconds']:6.2f}       ")
    row("rows", lambda r: f"{r['rows']:6}       ")
    row("overhead/engine", lambda r: f"{r['ratio']:5.2f}x")
    row("  w/o start-up", lambda r: f"{r['ratio_without_startup']:5.2f}x")
    return "\n".join(lines)


LEVERS = {
    "per-group": (["--request-cost", "1"], "a group a request to the engine (runner.REQUEST_COST = 1), as before"),
    "no-freeze": (["--no-freeze"], "no gc.freeze of the judge's long-lived objects (judges._long_lived_frozen)"),
    "torch-threads": (["--torch-threads"], "torch's float64 batches on its default threads, as before (its "
                      "spread estimate on one)"),
    "draws=N": ([], "the dag workload at N leaf draws per structure (the other workloads: skipped)"),
}


def variants_of(args):
    roots = [("", str(ROOT))] + ([("before ", str(Path(args.baseline).resolve()))] if args.baseline else [])
    levers = [lever for lever in args.levers.split(",") if lever]
    variants = []
    for workload in args.workloads.split(","):
        settings = [int(d) for d in args.draws.split(",")] if workload == "dag" else [16]
        for draws in settings:
            name = workload + (f" d={draws}" if workload == "dag" and len(settings) > 1 else "")
            for prefix, root in roots:
                variants.append({"label": prefix + name, "workload": workload, "draws": draws, "root": root,
                                 "flags": []})
            for lever in levers:
                if lever.startswith("draws="):
                    if workload == "dag":
                        variants.append({"label": f"dag {lever}", "workload": workload,
                                         "draws": int(lever.partition("=")[2]), "root": str(ROOT), "flags": []})
                    continue
                variants.append({"label": f"{name} {lever}", "workload": workload, "draws": draws,
                                 "root": str(ROOT), "flags": LEVERS[lever][0]})
    return variants


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="dag,default", help="dag, default or both (default: both)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh runs per variant (default 5)")
    parser.add_argument("--dag-cases", type=int, default=8192, help="cases of the dag workload (default 8192)")
    parser.add_argument("--draws", default="16", help="the dag workload's leaf draws per structure, "
                        "comma-separated settings (default 16, as parity run's expr family)")
    parser.add_argument("--levers", default="", metavar="LIST",
                        help="also run each workload with these changes undone, comma-separated: "
                             + "; ".join(f"{k}: {v[1]}" for k, v in LEVERS.items()))
    parser.add_argument("--baseline", metavar="DIR", help="also run each workload on the checkout DIR "
                        "(e.g. `git archive main | tar -x -C DIR`): the 'before' columns")
    parser.add_argument("--isolation", default="process", choices=("process", "auto"),
                        help="process (default): the engine in its worker, timed away from torch; auto: as "
                             "parity run ships (ours in the harness's process)")
    parser.add_argument("--quiet-runs", action="store_true", help="hide what the runs print on stderr")
    parser.add_argument("--json", metavar="OUT", help="write every figure and run to OUT")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--request-cost", help=argparse.SUPPRESS)
    parser.add_argument("--no-freeze", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    sys.path.insert(0, str(ROOT))
    import torch
    start_load = os.getloadavg()[0]
    print(f"gradparity harness overhead: CPU seconds per bucket, medians of {args.repeats} fresh runs, "
          f"isolation {args.isolation}; Python {platform.python_version()}, torch {torch.__version__}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC", flush=True)

    def log(line):
        print(line, file=sys.stderr, flush=True)

    results = measure(variants_of(args), args, log)
    loads = [r["load"] for result in results for r in result["runs"]]
    print()
    print(table(results))
    print(f"\ntarget: overhead <= {TARGET}x the engine's time; "
          + "; ".join(f"{r['label']}: {r['ratio']:.2f}x ({'met' if r['ratio'] <= TARGET else 'NOT met'})"
                      for r in results))
    print(f"load average {start_load:.2f} at the start, {min(loads):.2f}-{max(loads):.2f} after each run; "
          f"the engine's worker imported torch: {'yes' if any(r['worker_imported_torch'] for r in results) else 'no'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "isolation": args.isolation, "repeats": args.repeats, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
