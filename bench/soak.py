"""The soak: a long `parity run`, its memory sampled while it runs.

    python bench/soak.py [--cases 1000000] [--workers 2] [--out reports/soak.csv] [--html] [--json OUT]

Runs `parity run --families expr --cases N --workers W` as a subprocess and,
every second, reads the memory of it and every process under it (the fork
server, the workers) from /proc: RSS per process, and PSS (proportional set
size: shared pages, torch's libraries above all, divided among the processes
sharing them), whose sum is what the run really occupies.  Prints the
verdicts, the throughput, the peak of the summed PSS and of each process's
RSS, and the summed PSS along the run, so that bounded memory shows as a
flat line.  With --html, then times `parity report OUT --html` the same way.
Linux only (/proc).
"""
import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time

SAMPLE_SECONDS = 1.0


def descendants(pid):
    pids = [pid]
    try:
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children") as file:
                for child in file.read().split():
                    pids += descendants(int(child))
    except OSError:  # it ended meanwhile
        pass
    return pids


def memory_kb(pid):
    """(rss, pss) of one process in kB; None once it has ended."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            fields = dict(line.split()[:2] for line in file if line.split()[0] in ("Rss:", "Pss:"))
        return int(fields["Rss:"]), int(fields["Pss:"])
    except (OSError, KeyError, ValueError):
        return None


def sampled(argv):
    """Run argv; return (exit status, seconds, peak summed PSS kB, peak RSS kB
    per process role, [(second, summed PSS kB)])."""
    start = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    trace, peak_pss, peak_rss = [], 0, {}
    while process.poll() is None:
        total = 0
        for pid in descendants(process.pid):
            memory = memory_kb(pid)
            if memory is None:
                continue
            role = "parent" if pid == process.pid else "child"
            peak_rss[role] = max(peak_rss.get(role, 0), memory[0])
            total += memory[1]
        peak_pss = max(peak_pss, total)
        trace.append((round(time.monotonic() - start), total))
        time.sleep(SAMPLE_SECONDS)
    return process.returncode, time.monotonic() - start, peak_pss, peak_rss, trace


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="reports/soak.csv")
    parser.add_argument("--html", action="store_true", help="then draw the report with `parity report --html`")
    parser.add_argument("--json", help="write the figures and the memory trace here")
    args = parser.parse_args()
    parity = [sys.executable, "-m", "parity.cli"]

    status, seconds, peak_pss, peak_rss, trace = sampled(
        parity + ["run", "--families", "expr", "--cases", str(args.cases), "--workers", str(args.workers),
                  "--out", args.out, "--quiet"])
    sidecar = json.loads(Path(args.out).with_suffix(".json").read_text())
    figures = {"cases": args.cases, "workers": args.workers, "exit_status": status, "seconds": seconds,
               "cases_per_second": args.cases / seconds, "verdicts": sidecar.get("verdicts"),
               "peak_pss_mb": peak_pss / 1024, "peak_rss_mb": {k: v / 1024 for k, v in peak_rss.items()},
               "pss_trace_mb": [(t, round(kb / 1024)) for t, kb in trace]}
    print(f"parity run: {args.cases} cases, {args.workers} workers, exit {status}, {seconds:.0f} s "
          f"({args.cases / seconds:.0f} cases/s); verdicts {sidecar.get('verdicts')}")
    print(f"  peak memory: {peak_pss / 1024:.0f} MB PSS summed over the processes; peak RSS "
          + ", ".join(f"{role} {kb / 1024:.0f} MB" for role, kb in peak_rss.items()))
    tenths = [trace[len(trace) * i // 10] for i in range(10)] + trace[-1:]
    print("  summed PSS along the run (s: MB): " + ", ".join(f"{t}: {kb / 1024:.0f}" for t, kb in tenths))
    if args.html:
        html = str(Path(args.out).with_suffix(".html"))
        status, seconds, peak_pss, _, _ = sampled(parity + ["report", args.out, "--html", html])
        figures["report"] = {"exit_status": status, "seconds": seconds, "peak_pss_mb": peak_pss / 1024}
        print(f"parity report --html {html}: exit {status}, {seconds:.0f} s, peak {peak_pss / 1024:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
