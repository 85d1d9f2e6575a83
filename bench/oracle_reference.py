#!/usr/bin/env python
"""The oracle as the reference: how long the default run takes against it,
beside torch, and whether the verdicts are the same.

    python bench/oracle_reference.py [--repeats N] [--cases N] [--workers N] [--buggy]

Workload: `parity run` (the default run, or ``--cases N`` of it), as a
subprocess from the repository root, with ``--reference torch`` and
``--reference oracle`` one after the other in every repeat, so that what
the machine does meanwhile hits both alike.  Wall clock of the whole
subprocess, medians of the repeats; the ratio is oracle / torch (target:
at most 3x, issue 14).  PYTHONPATH names this checkout, so that the judge
processes (started by a fork server, which does not inherit sys.path on
Python 3.11) import its harness, not an installed one.

Then the verdicts, case by case, of the last repeat's two reports: a table
of (torch's verdict, the oracle's) pairs.  Against the exact answer a case
that torch passes may be ``ill_conditioned`` (torch's float64 answer, which
the engine shares, is not the exact one rounded, by no more than rounding
explains), and ``torch_off`` cannot occur; anything else - a torch pass
that the oracle fails, a torch fail or error it does not - is a
disagreement, and the exit status is 1.

``--buggy``: the same for bench/buggy.py's copy of the engine with a wrong
tanh derivative (sandboxed), whose failing cases must fail against both.
"""
import argparse
from collections import Counter
import csv
import os
from pathlib import Path
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from buggy import buggy_copy  # noqa: E402

REFERENCES = ("torch", "oracle")
# (torch's verdict, the oracle's) pairs that are not disagreements
AGREE = {("pass", "pass"), ("pass", "ill_conditioned"), ("ill_conditioned", "ill_conditioned"),
         ("torch_off", "pass"), ("torch_off", "ill_conditioned"), ("fail", "fail"), ("error", "error"),
         ("unsupported", "unsupported")}


def timed_run(reference, out, extra, env):
    """(wall seconds, CPU seconds) of one run: its CPU time (user + system,
    of the run and the processes it waited for) is what a loaded machine
    disturbs least."""
    argv = [sys.executable, "-m", "parity.cli", "run", "--quiet", "--reference", reference, "--out", str(out), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def verdicts(path):
    with open(path, newline="") as file:
        return {row["case_id"]: (row["family"], row["verdict"]) for row in csv.DictReader(file)}


def compare(torch_report, oracle_report):
    """(Counter of (family, torch verdict, oracle verdict)), the disagreeing case ids."""
    by_torch, by_oracle = verdicts(torch_report), verdicts(oracle_report)
    assert by_torch.keys() == by_oracle.keys(), "the two runs have different cases"
    pairs = Counter((by_torch[c][0], by_torch[c][1], by_oracle[c][1]) for c in by_torch)
    bad = [c for c in by_torch if (by_torch[c][1], by_oracle[c][1]) not in AGREE]
    return pairs, bad


def report(label, pairs, bad):
    totals = Counter()
    for (family, t, o), n in pairs.items():
        totals[t, o] += n
    print(f"{label}: verdicts, torch -> oracle, case by case ({sum(totals.values())} cases)")
    for (t, o), n in sorted(totals.items(), key=lambda item: -item[1]):
        families = ", ".join(f"{family} {m}" for (family, t2, o2), m in sorted(pairs.items()) if (t2, o2) == (t, o))
        print(f"  {t:>16} -> {o:<16} {n:>6}   ({families})")
    print(f"  disagreements: {len(bad)}" + (f" (e.g. {', '.join(bad[:5])})" if bad else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", type=int, help="cases in all (default: the default run, 8,489)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--buggy", action="store_true", help="also a copy of the engine with a wrong tanh derivative")
    args = parser.parse_args(argv)
    extra = (["--cases", str(args.cases)] if args.cases else []) + ["--workers", str(args.workers)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        engines = [("engine", [])]
        if args.buggy:
            env["PYTHONPATH"] += os.pathsep + str(tmp)
            engines.append(("buggy tanh", ["--engine", buggy_copy(tmp), "--isolation", "process"]))
        for label, engine in engines:
            seconds = {reference: [] for reference in REFERENCES}
            cpu = {reference: [] for reference in REFERENCES}
            for repeat in range(args.repeats):
                for reference in REFERENCES:
                    out = tmp / f"{label.replace(' ', '_')}-{reference}-{repeat}.csv"
                    wall, used = timed_run(reference, out, extra + engine, env)
                    seconds[reference].append(wall)
                    cpu[reference].append(used)
                print(f"{label}, repeat {repeat + 1}: wall torch {seconds['torch'][-1]:.1f} s, oracle "
                      f"{seconds['oracle'][-1]:.1f} s ({seconds['oracle'][-1] / seconds['torch'][-1]:.2f}x); CPU "
                      f"torch {cpu['torch'][-1]:.1f} s, oracle {cpu['oracle'][-1]:.1f} s "
                      f"({cpu['oracle'][-1] / cpu['torch'][-1]:.2f}x)", flush=True)
            for what, table in (("wall", seconds), ("CPU", cpu)):
                torch_s, oracle_s = (statistics.median(table[r]) for r in REFERENCES)
                print(f"{label}: {what}, median of {args.repeats}: torch {torch_s:.1f} s, oracle {oracle_s:.1f} s: "
                      f"{oracle_s / torch_s:.2f}x")
            last = args.repeats - 1
            pairs, bad = compare(*(tmp / f"{label.replace(' ', '_')}-{r}-{last}.csv" for r in REFERENCES))
            report(label, pairs, bad)
            status |= bool(bad)
    return status


if __name__ == "__main__":
    sys.exit(main())
