"""What a run says while it runs, on stderr: before the first case, the plan's
size and a rough ETA; then, on a terminal, a progress bar (tqdm) counting
pass, fail and error as it goes; off a terminal (CI logs), a line every
LINE_SECONDS.  ``mode``: "bar", "lines", or None (silent: --quiet, or a
caller that is not the command line).
"""
import collections
import sys
import time

from .compare import ERROR, FAIL, PASS

LINE_SECONDS = 10.0
# Seconds a case of each family takes our engine with one worker (each
# family's default cases alone, 2026-12-03, 2 cores, some load): the ETA
# before any case has run.  An outside engine in its sandbox, a buggy one
# (the oracle, the diagnosis) or a busier machine takes longer: the bar's
# own rate replaces it as soon as cases finish.
PRIOR_SECONDS = {"expr": 0.004, "mlp": 0.03, "accumulation": 0.003, "function": 0.006, "edges": 0.0006,
                 "higher_order": 0.01, "forward": 0.003}
SHOWN = (PASS, FAIL, ERROR)


class Progress:
    def __init__(self, spec, planned, done, mode, stream=None):
        self.mode, self.stream = mode, stream or sys.stderr  # the stderr of now (a test's capture)
        self.total, self.counts = planned - done, collections.Counter()
        self.start = self.last_line = time.monotonic()
        self.bar = None
        if mode is None:
            return
        self._say(_plan_line(spec, planned, done))
        if mode == "bar":
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is optional: lines instead
                self.mode = "lines"
            else:
                self.bar = tqdm(total=self.total, unit="case", file=stream, dynamic_ncols=True)

    def update(self, rows):
        self.counts.update(row["verdict"] for row in rows)
        if self.bar is not None:
            self.bar.set_postfix_str(self._counts(), refresh=False)
            self.bar.update(len(rows))
        elif self.mode == "lines" and time.monotonic() - self.last_line >= LINE_SECONDS:
            self.last_line = time.monotonic()
            self._say(self.line())

    def line(self):
        """'parity: 1,234/8,489 cases (pass 1,200, fail 30, error 4), 12 s, ETA 40 s'."""
        done = sum(self.counts.values())
        seconds = time.monotonic() - self.start
        eta = f", ETA {seconds * (self.total - done) / done:.0f} s" if done else ""
        return f"parity: {done:,}/{self.total:,} cases ({self._counts()}), {seconds:.0f} s{eta}"

    def _counts(self):
        return ", ".join(f"{verdict} {self.counts[verdict]:,}" for verdict in SHOWN)

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def _say(self, text):
        print(text, file=self.stream, flush=True)


def _plan_line(spec, planned, done):
    families = ", ".join(f"{family} {spec.n_cases(family):,}" for family in spec.families)
    whole = sum(PRIOR_SECONDS[family] * spec.n_cases(family) for family in spec.families)
    eta = whole * (planned - done) / planned if planned else 0.0
    resumed = f"; {done:,} done before, {planned - done:,} to run" if done else ""
    return (f"parity: {planned:,} cases planned ({families} in the whole run){resumed}; "
            f"ETA about {eta:.0f} s for our engine on one worker")
