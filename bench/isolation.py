#!/usr/bin/env python
"""Does isolation make the harness slower?  `parity run` in process against sandboxed.

    python bench/isolation.py [--repeats N] [--cases N] [--families LIST] [--json OUT]

Workload: the default `parity run` (every family, its default case counts,
seed 0), run as a subprocess from the repository root,

    python -m parity.cli run --quiet --out TMP/x.csv --engine SPEC --isolation MODE [--cases N] [--families LIST]

with each of two engines in each of two modes:

- ``engine``: this repository's engine;
- ``tests/engines/micrograd.py:Value``: a learner's micrograd-style file
  (no ``__rsub__``, no ``__rtruediv__``, a recursive topological sort),
  an engine from outside the harness; with ``--ops supported``, so that its
  expr cases use only the ops it has;

- ``--isolation none``: the engine in the harness's process;
- ``--isolation process``: the engine in a sandboxed worker process
  (parity/isolation.py), every case's graph and leaves sent to it and its
  values and gradients sent back, as JSON over a socket pair.

What is timed is the wall clock of the whole subprocess
(``time.perf_counter()`` around ``subprocess.run``): start-up, imports,
the worker's start, every case, the CSV.  Before the timed runs, each
engine and mode runs once untimed on a few cases (``--cases 8 --families
expr``: the disk cache, the first import of torch).  Within each repeat the
two modes of an engine run one after the other (engine: none, process;
micrograd: none, process), so that what the machine does meanwhile hits
both alike; the figures are medians over ``--repeats`` repeats.

Per engine: the median seconds in process and isolated, their ratio
(isolated / in process), and whether both modes wrote the same rows apart
from the timing columns (``engine_seconds``, ``torch_seconds``), compared
run by run within each repeat.  With two repeats or more it also says
whether two runs of the same mode wrote the same rows: an engine that is not
deterministic differs from itself, and then a difference between the modes
is not the isolation's doing (the learner's file is such an engine: it keeps
a node's children in a set of objects, hashed by address).  The exit status
is 1 when the rows of our engine differ between the two modes.

Target: isolated at most 1.2x the in-process time on a correct engine (ours).
See bench/README.md.
"""
import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's engine and parity, not an installed copy

ENGINES = (
    ("engine", "engine", ()),
    ("micrograd-style file", "tests/engines/micrograd.py:Value", ("--ops", "supported")),
)
MODES = ("none", "process")
TIMING_COLUMNS = ("engine_seconds", "torch_seconds")
TARGET_RATIO = 1.2
WARMUP = ("--cases", "8", "--families", "expr")


def parity_run(spec, extra, mode, out, passthrough):
    """Seconds of wall clock of one `parity run` subprocess."""
    argv = [sys.executable, "-m", "parity.cli", "run", "--quiet", "--out", str(out), "--engine", spec,
            "--isolation", mode, *extra, *passthrough]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: some case failed, the engine's business
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise SystemExit(f"parity run --engine {spec} --isolation {mode} exited {done.returncode}:\n{tail}")
    return seconds


def read_rows(path):
    """The CSV's rows as tuples, the timing columns left out."""
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        keep = [i for i, name in enumerate(header) if name not in TIMING_COLUMNS]
        names = [header[i] for i in keep]
        return names, [tuple(row[i] for i in keep) for row in reader]


def differences(a, b):
    """(rows that differ, the columns they differ in), of two read_rows results."""
    (names, rows_a), (_, rows_b) = a, b
    if len(rows_a) != len(rows_b):
        return max(len(rows_a), len(rows_b)), ["(row count)"]
    differing, columns = 0, set()
    for row_a, row_b in zip(rows_a, rows_b):
        if row_a != row_b:
            differing += 1
            columns.update(name for name, x, y in zip(names, row_a, row_b) if x != y)
    return differing, sorted(columns)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per engine and mode (default 5)")
    parser.add_argument("--cases", type=int, metavar="N",
                        help="cases per family, passed to parity run (default: its default mix)")
    parser.add_argument("--families", metavar="LIST", help="passed to parity run (default: all)")
    parser.add_argument("--json", metavar="OUT", help="write every figure and run to OUT")
    args = parser.parse_args(argv)
    passthrough = []
    if args.cases is not None:
        passthrough += ["--cases", str(args.cases)]
    if args.families is not None:
        passthrough += ["--families", args.families]

    workload = " ".join(passthrough) or "the default parity run (all families, default case counts)"
    print(f"gradparity isolation benchmark: {workload}, median of {args.repeats}; "
          f"Python {platform.python_version()}, {os.cpu_count()} cores", flush=True)

    def log(line):
        print(line, file=sys.stderr, flush=True)

    runs = {label: {mode: [] for mode in MODES} for label, _, _ in ENGINES}
    mode_diffs = {label: [] for label, _, _ in ENGINES}     # none against process, per repeat
    self_diffs = {label: {mode: [] for mode in MODES} for label, _, _ in ENGINES}  # against repeat 1
    with tempfile.TemporaryDirectory(prefix="bench-isolation-") as tmp:
        tmp = Path(tmp)
        for label, spec, extra in ENGINES:  # untimed warm-up
            for mode in MODES:
                parity_run(spec, extra, mode, tmp / "warmup.csv", WARMUP)
        first = {}
        for repeat in range(args.repeats):
            for label, spec, extra in ENGINES:
                rows = {}
                for mode in MODES:
                    out = tmp / f"x-{mode}.csv"
                    runs[label][mode].append(parity_run(spec, extra, mode, out, passthrough))
                    rows[mode] = read_rows(out)
                    if repeat == 0:
                        first[label, mode] = rows[mode]
                    else:
                        self_diffs[label][mode].append(differences(first[label, mode], rows[mode]))
                mode_diffs[label].append(differences(rows["none"], rows["process"]))
                n_rows = len(rows["none"][1])
                log(f"  repeat {repeat + 1}/{args.repeats} {label:<21} {n_rows} rows: "
                    f"none {runs[label]['none'][-1]:6.2f} s, process {runs[label]['process'][-1]:6.2f} s, "
                    f"rows differing {mode_diffs[label][-1][0]}")

    results = []
    for label, spec, _ in ENGINES:
        in_process = statistics.median(runs[label]["none"])
        isolated = statistics.median(runs[label]["process"])
        differing = max(d for d, _ in mode_diffs[label])
        columns = sorted({c for _, cs in mode_diffs[label] for c in cs})
        self_differing = {mode: max((d for d, _ in self_diffs[label][mode]), default=None) for mode in MODES}
        results.append({
            "engine": label, "spec": spec, "rows": len(first[label, "none"][1]),
            "in_process_seconds": in_process, "isolated_seconds": isolated, "ratio": isolated / in_process,
            "rows_identical": differing == 0, "rows_differing": differing, "columns_differing": columns,
            "same_mode_rows_differing": self_differing,
            "runs": runs[label], "rows_differing_per_repeat": [d for d, _ in mode_diffs[label]],
        })

    print()
    print("| engine | rows | in process (s) | isolated (s) | isolated / in process | rows identical |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        print(f"| {r['engine']} | {r['rows']} | {r['in_process_seconds']:.2f} | {r['isolated_seconds']:.2f} | "
              f"{r['ratio']:.2f}x | {'yes' if r['rows_identical'] else 'no'} |")
    print()
    for r in results:
        verdict = "met" if r["ratio"] <= TARGET_RATIO else "NOT met"
        target = f" (target {TARGET_RATIO}x: {verdict})" if r["spec"] == "engine" else ""
        print(f"{r['engine']}: isolated {r['ratio']:.2f}x the in-process time{target}; "
              f"rows identical: {'yes' if r['rows_identical'] else 'no'}")
        if not r["rows_identical"]:
            print(f"  up to {r['rows_differing']} of {r['rows']} rows differ between the modes, "
                  f"in {', '.join(r['columns_differing'])}")
            same = r["same_mode_rows_differing"]
            if same["none"] is None:
                print("  (one repeat: no run of the same mode to compare with)")
            elif same["none"] or same["process"]:
                print(f"  runs of the same mode differ too (up to {same['none']} rows in process, "
                      f"{same['process']} isolated): the engine is not deterministic")
            else:
                print("  runs of the same mode agree: the difference is the isolation's")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "passthrough": passthrough, "repeats": args.repeats, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "target_ratio": TARGET_RATIO, "results": results,
        }, indent=2))
    # Our engine is deterministic by design: its rows must not depend on the
    # mode.  The learner's file keeps children in a set of objects hashed by
    # address, so its rows differ from run to run whatever the mode.
    return 0 if all(r["rows_identical"] for r in results if r["spec"] == "engine") else 1


if __name__ == "__main__":
    sys.exit(main())
