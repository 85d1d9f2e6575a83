#!/usr/bin/env python
"""How long does `parity grade` take for a class?

    python bench/grade.py [--students 30] [--workers 2] [--repeats 1]

Workload: a class of N students made from tests/engines/class/ (the correct,
buggy and hostile submissions in turn, the three that do not load
included), in a temporary folder as `student_K/micrograd.py`, graded with
the lecture rubric's default cases, `parity grade` as a subprocess from the
repository root.  Wall clock of the whole command, median of the repeats,
and per submission: the wall time over N, and each grading job's own time
(its result.json's seconds: the engine loaded to the findings written,
without the ~3 s a job's judge takes to start).
"""
import argparse
import json
from pathlib import Path
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "tests" / "engines" / "class"


def make_class(folder, students):
    sources = sorted(p for p in CLASS.glob("*/*.py"))
    for k in range(students):
        source = sources[k % len(sources)]
        target = folder / f"student_{k + 1:02d}" / "micrograd.py"
        target.parent.mkdir(parents=True)
        shutil.copy(source, target)  # carol's class is Scalar in engine.py: found all the same
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    walls, jobs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        students = make_class(Path(tmp) / "class", args.students)
        for repeat in range(args.repeats):
            out = Path(tmp) / f"grades-{repeat}"
            argv = [sys.executable, "-m", "parity.cli", "grade", str(students / "*"), "--out", str(out),
                    "--workers", str(args.workers)]
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
            jobs += [json.loads(p.read_text())["seconds"] for p in out.glob("jobs/*/result.json")]
    wall = statistics.median(walls)
    print(f"{args.students} students, --workers {args.workers}, {args.repeats} repeat(s): "
          f"median wall {wall:.1f} s ({wall / args.students:.2f} s per submission); "
          f"a job's own time: median {statistics.median(jobs):.1f} s, max {max(jobs):.1f} s")


if __name__ == "__main__":
    main()
