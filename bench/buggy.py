#!/usr/bin/env python
"""Does a buggy engine's run cost about what a correct one's does?

    python bench/buggy.py [--repeats N] [--cases N] [--families LIST]

Workload: the default `parity run` (every family, its default mix), as a
subprocess from the repository root, on two engines, one after the other
in every repeat so that what the machine does meanwhile hits both alike:

- ``engine``: this repository's engine;
- ``gradparity_buggy_tanh:Value``: a copy of it (in a temporary directory
  on PYTHONPATH) whose tanh backward is ``g * (1.0 - y)`` instead of
  ``g * (1 - y*y)``: every case with a tanh fails, and the run ends with
  the diagnosis of those failures.

Both run sandboxed (``--isolation process``), as an outside engine does.
Wall clock of the whole subprocess, median of the repeats; the ratio is
buggy / correct.  Target: at most 1.5x (issue "Diagnosis").  Each repeat's
own ratio is shown too: its two runs, back to back, meet about the same
other work on the machine.  The exit status is 1 when the buggy run does
not end with a tanh finding.
"""
import argparse
import os
from pathlib import Path
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
BUG = ("g * floatmath.one_minus_square(node.data)", "g * (1.0 - node.data)")


def buggy_copy(directory):
    package = directory / "gradparity_buggy_tanh"
    shutil.copytree(ROOT / "engine", package, ignore=shutil.ignore_patterns("__pycache__"))
    value = package / "value.py"
    source = value.read_text()
    assert source.count(BUG[0]) == 1, "engine/value.py changed: update bench/buggy.py's BUG"
    value.write_text(source.replace(*BUG))
    return "gradparity_buggy_tanh:Value"


def timed_run(spec, out, extra, env):
    argv = [sys.executable, "-m", "parity.cli", "run", "--quiet", "--isolation", "process", "--engine", spec,
            "--out", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", type=int)
    parser.add_argument("--families")
    args = parser.parse_args(argv)
    extra = (["--cases", str(args.cases)] if args.cases else []) + (
        ["--families", args.families] if args.families else [])
    with tempfile.TemporaryDirectory(prefix="bench-buggy-") as tmp:
        tmp = Path(tmp)
        buggy = buggy_copy(tmp)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp), str(ROOT),
                                                                          os.environ.get("PYTHONPATH")]))}
        times = {"correct": [], "buggy": []}
        for repeat in range(args.repeats):
            for label, spec in (("correct", "engine"), ("buggy", buggy)):
                seconds, stdout = timed_run(spec, tmp / f"{label}.csv", extra, env)
                times[label].append(seconds)
                print(f"  repeat {repeat + 1}/{args.repeats} {label:<8} {seconds:6.2f} s", file=sys.stderr)
    correct, buggy_s = statistics.median(times["correct"]), statistics.median(times["buggy"])
    print(f"| engine | median (s) |\n| --- | ---: |\n| correct | {correct:.2f} |\n| buggy tanh | {buggy_s:.2f} |")
    print(f"\nbuggy / correct: {buggy_s / correct:.2f}x (target 1.5x)")
    ratios = sorted(b / c for c, b in zip(times["correct"], times["buggy"]))
    print(f"per repeat: {ratios[0]:.2f}-{ratios[-1]:.2f}x, median {statistics.median(ratios):.2f}x")
    found = "wrong      tanh: gradient" in stdout
    print(f"the buggy run's diagnosis names tanh's gradient: {'yes' if found else 'NO'}")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
