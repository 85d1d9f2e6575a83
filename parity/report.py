"""Parity reports: the CSV schema, reading it back strictly, the end-of-run
summary and the baseline regression check.

A report is one row per case (the columns below, in this order; more may
follow) plus a sidecar JSON with the run's arguments and metadata (see
campaign.py).  Everything here works on a pandas DataFrame read by
``read_report``, so a report from any machine or shard can be summarised and
compared.
"""
import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
import math
import os
import re
import stat

import numpy as np
import pandas as pd

COLUMNS = (
    "case_id", "family", "seed", "index", "name", "engine", "n_nodes", "n_leaves", "depth", "ops",
    "verdict", "max_abs_err_data", "max_rel_err_data", "max_ulp_data", "max_abs_err_grad",
    "max_rel_err_grad", "max_ulp_grad", "engine_seconds", "torch_seconds", "oracle_consulted",
    "detail", "replay",
)
INT_COLUMNS = ("seed", "index", "n_nodes", "n_leaves", "depth")
FLOAT_COLUMNS = ("max_abs_err_data", "max_rel_err_data", "max_ulp_data", "max_abs_err_grad",
                 "max_rel_err_grad", "max_ulp_grad", "engine_seconds", "torch_seconds")
BOOL_COLUMNS = ("oracle_consulted",)
# The only columns that may differ between two runs of the same arguments.
TIMING_COLUMNS = ("engine_seconds", "torch_seconds")

VERDICTS = ("pass", "fail", "torch_off", "ill_conditioned", "error", "unsupported")
BAD_VERDICTS = ("fail", "error")  # the ones that make `parity run` exit 1
# How bad a verdict is, for the regression check.  torch_off (torch is the one
# that is wrong) and ill_conditioned (both as close as the problem allows) are
# as good as pass; a change among them is reported but is not a regression.
VERDICT_RANK = {"pass": 0, "torch_off": 0, "ill_conditioned": 0, "unsupported": 1, "fail": 2, "error": 2}

# Regression check defaults: an error counts as grown when it exceeds
# FACTOR times the baseline's, and the baseline's is taken as at least FLOOR,
# so that ulp-level noise (0 -> 2e-16) is not a regression.
GROWTH_FACTOR = 10.0
GROWTH_FLOOR = 1e-14  # about 45 ulp
COMPARED_ERRORS = ("max_rel_err_data", "max_rel_err_grad")


class ReportError(ValueError):
    """A report file that cannot be used: unreadable, wrong schema, bad value."""


# Rows per chunk when a report is read piecewise (a summary, a merge): a
# few tens of MB of pandas objects, whatever the report's length.
CHUNK_ROWS = 20_000


def read_report(path):
    """The report at ``path`` as a DataFrame with typed columns.

    Raises ReportError naming the file, and the line and column where a value
    does not parse."""
    df = pd.concat(list(iter_report(path)), ignore_index=True)
    duplicated = df["case_id"][df["case_id"].duplicated()]
    if len(duplicated):
        raise ReportError(f"{path}: case_id {duplicated.iloc[0]!r} appears more than once")
    return df


def iter_report(path, chunk_rows=CHUNK_ROWS):
    """The report at ``path`` as typed DataFrames of up to ``chunk_rows`` rows
    each (at least one, maybe empty), checked as ``read_report`` checks them,
    except for case_ids repeated in different chunks."""
    try:
        _check_file(path)
        # Everything as text first, so that each value is parsed (and any bad
        # one reported) here, with its line number.
        with pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_rows) as chunks:
            for raw in chunks:
                yield _typed(raw, path)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from None
    except pd.errors.EmptyDataError:
        raise ReportError(f"{path}: empty file, not a parity report") from None
    except pd.errors.ParserError as exc:
        raise ReportError(f"{path}: malformed CSV: {exc}") from None


def _check_file(path):
    """A regular file (a FIFO or a device would block or never end) whose
    last line is whole: a writer stopped in the middle of a row (a full
    disk, a kill) leaves a last line without its line end, and that row
    is not to be trusted."""
    with open(path, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ReportError(f"{path}: not a regular file")
        size = file.seek(0, os.SEEK_END)
        if size and (file.seek(size - 1), file.read(1))[1] != b"\n":
            raise ReportError(f"{path}: its last line is cut (no line end): the file was not written to the "
                              f"end (a full disk, a killed run)")


def _typed(raw, path):
    if not isinstance(raw.index, pd.RangeIndex):  # pandas took the first columns of longer rows as an index
        raise ReportError(f"{path}: malformed CSV: rows with more fields than the header")
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ReportError(f"{path}: not a parity report: missing column(s) {', '.join(missing)}")
    df = raw.copy()
    for columns, parse, dtype in ((INT_COLUMNS, _parse_int, "int64"), (FLOAT_COLUMNS, _parse_float, "float64"),
                                  (BOOL_COLUMNS, _parse_bool, "bool")):
        for column in columns:
            values = []
            # A chunk's index continues its predecessor's: line = index + 2 (the header is line 1).
            for line, text in zip(raw.index + 2, raw[column]):
                try:
                    values.append(parse(text))
                except ValueError:
                    raise ReportError(f"{path}, line {line}: column {column}: cannot parse {text!r}") from None
            df[column] = pd.Series(values, index=raw.index, dtype=dtype)
    unknown = sorted(set(df["verdict"]) - set(VERDICTS))
    if unknown:
        raise ReportError(f"{path}: unknown verdict(s) {', '.join(map(repr, unknown))}")
    duplicated = df["case_id"][df["case_id"].duplicated()]
    if len(duplicated):
        raise ReportError(f"{path}: case_id {duplicated.iloc[0]!r} appears more than once")
    return df


def _parse_int(text):
    # Digits only (int() also takes "1_000", spaces and other scripts'
    # digits), and within int64, the column's type.
    if not _INT.fullmatch(text) or not INT64_MIN <= int(text) <= INT64_MAX:
        raise ValueError(text)
    return int(text)


_INT = re.compile(r"-?[0-9]{1,19}")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _parse_float(text):
    return math.nan if text == "" else float(text)


def _parse_bool(text):
    if text in ("True", "true", "1"):
        return True
    if text in ("False", "false", "0", ""):
        return False
    raise ValueError(text)


def failing(df):
    return df[df["verdict"].isin(BAD_VERDICTS)]


# -- the end-of-run summary ----------------------------------------------------
def single_op_rows(df):
    """The rows of cases that use one op alone (any number of times), that
    op in column ``op``: an op's errors are its own only there.  (Counting
    every case that contains an op lights up every op for one wrong op.)"""
    ops = df["ops"].fillna("").astype(str)
    return df.assign(op=ops)[(ops != "") & ~ops.str.contains(";", regex=False)]


class Summary:
    """The end-of-run summary, added up a chunk of rows at a time, so that a
    report of any length is summarised in bounded memory: counts, the first
    ``limit`` failures, and per op (over the cases using it alone) the count
    of exact gradients and the nonzero errors (a few per case: most cases match torch bit for bit),
    which is all that exact quantiles need."""
    ERROR = "max_rel_err_grad"

    def __init__(self, limit=100):
        self.limit = limit
        self.cases = 0
        self.verdicts = Counter()      # (family, verdict) -> cases
        self.op_cases = Counter()      # op -> cases using it alone
        self.op_exact = Counter()      # op -> of them, those with error 0
        self.op_errors = defaultdict(list)  # op -> arrays of its nonzero errors
        self._smallest = []            # the `limit` smallest failing rows, a heap: (-n_nodes, -row number, row)
        self.n_failures = 0

    def add(self, df):
        self.cases += len(df)
        self.verdicts.update(zip(df["family"], df["verdict"]))
        per_op = single_op_rows(df[["ops", self.ERROR]])
        self.op_cases.update(per_op["op"])
        errors = per_op[self.ERROR]
        self.op_exact.update(per_op["op"][errors == 0])
        inexact = per_op[(errors != 0) & errors.notna()]
        for op, nonzero in inexact.groupby("op")[self.ERROR]:
            self.op_errors[op].append(nonzero.to_numpy())
        bad = failing(df)
        for n_nodes, row in zip(bad["n_nodes"], bad[["replay", "verdict", "detail"]].itertuples(index=False)):
            entry = (-int(n_nodes), -self.n_failures, tuple(row))
            self.n_failures += 1
            if len(self._smallest) < self.limit:
                heapq.heappush(self._smallest, entry)
            elif entry > self._smallest[0]:
                heapq.heapreplace(self._smallest, entry)
        return self

    @property
    def failures(self):
        """(replay, verdict, detail) of the `limit` smallest failing cases,
        the smallest first: they show a bug most plainly."""
        return [row for _, _, row in sorted(self._smallest, reverse=True)]

    @property
    def failed(self):
        return self.n_failures > 0

    def verdict_counts(self):
        """{verdict: cases}, as in a run's sidecar."""
        counts = Counter()
        for (_, verdict), n in self.verdicts.items():
            counts[verdict] += n
        return {verdict: counts[verdict] for verdict in VERDICTS if counts[verdict]}

    def verdict_table(self):
        families = sorted({family for family, _ in self.verdicts})
        present = [v for v in VERDICTS if any(v == verdict for _, verdict in self.verdicts)]
        table = pd.DataFrame([[self.verdicts[family, v] for v in present] for family in families],
                             index=pd.Index(families, name="family"),
                             columns=pd.Index(present, name="verdict"), dtype="int64")
        table.loc["total"] = table.sum()
        table["total"] = table.sum(axis=1)
        return table

    def op_error_table(self):
        rows = {}
        for op in sorted(self.op_cases):
            nonzero = np.sort(np.concatenate(self.op_errors[op])) if self.op_errors[op] else np.empty(0)
            exact = self.op_exact[op]
            rows[op] = {"cases": self.op_cases[op],
                        "median": _quantile(exact, nonzero, 0.5), "p99": _quantile(exact, nonzero, 0.99),
                        "max": nonzero[-1] if len(nonzero) else (0.0 if exact else math.nan)}
        table = pd.DataFrame.from_dict(rows, orient="index", columns=["cases", "median", "p99", "max"])
        table.index.name = "op"
        return table

    def text(self, seconds=None, ran=None):
        """With ``seconds``, the throughput of the ``ran`` cases run in that
        time (default: all of them)."""
        if not self.cases:
            return "no cases"
        parts = ["verdicts per family:", self.verdict_table().to_string(), ""]
        if self.op_cases:
            parts += ["relative gradient error per op (cases of that op alone):",
                      self.op_error_table().to_string(float_format=lambda x: f"{x:.2e}", na_rep="-"), ""]
        if seconds:
            ran = self.cases if ran is None else ran
            parts.append(f"ran {ran} cases in {seconds:.1f} s: {ran / seconds:.1f} cases/s")
        if self.failures:
            parts.append(f"{self.n_failures} case(s) failed; the smallest first, replay with:")
            parts += [f"  {replay}    # {verdict}: {detail}" for replay, verdict, detail in self.failures]
            if self.n_failures > len(self.failures):
                parts.append(f"  ... and {self.n_failures - len(self.failures)} more (verdict fail or error in the CSV)")
        else:
            parts.append("no case failed")
        return "\n".join(parts)


def _quantile(exact, nonzero, q):
    """The q-quantile, interpolated as pandas and numpy do by default, of
    ``exact`` zeros followed by the sorted ``nonzero`` errors (all >= 0)."""
    n = exact + len(nonzero)
    if not n:
        return math.nan
    position = q * (n - 1)
    below, above = math.floor(position), math.ceil(position)

    def at(i):
        return 0.0 if i < exact else float(nonzero[i - exact])
    return at(below) + (at(above) - at(below)) * (position - below)


# -- the regression check ------------------------------------------------------
@dataclass
class Change:
    case_id: str
    what: str  # "pass -> fail", "max_rel_err_grad 1.0e-15 -> 3.2e-08 (x32000)"


@dataclass
class Comparison:
    regressed: list = field(default_factory=list)  # Changes
    fixed: list = field(default_factory=list)      # Changes
    changed: list = field(default_factory=list)    # verdict changes of equal rank
    added: list = field(default_factory=list)      # case_ids only in the current report
    missing: list = field(default_factory=list)    # case_ids only in the baseline

    def format(self, limit=50):
        lines = []
        for title, items in (("regressed", self.regressed), ("fixed", self.fixed),
                             ("changed (not a regression)", self.changed),
                             ("added", self.added), ("missing", self.missing)):
            lines.append(f"{title}: {len(items)}")
            for item in items[:limit]:
                lines.append(f"  {item.case_id}: {item.what}" if isinstance(item, Change) else f"  {item}")
            if len(items) > limit:
                lines.append(f"  ... {len(items) - limit} more")
        return "\n".join(lines)


def compare_reports(baseline, current, factor=GROWTH_FACTOR, floor=GROWTH_FLOOR):
    """Match the two reports' cases by case_id and sort out what changed."""
    result = Comparison()
    before = baseline.set_index("case_id")
    after = current.set_index("case_id")
    result.added = [c for c in after.index if c not in before.index]
    result.missing = [c for c in before.index if c not in after.index]
    for case_id in [c for c in before.index if c in after.index]:
        old, new = before.loc[case_id], after.loc[case_id]
        if old["verdict"] != new["verdict"]:
            change = Change(case_id, f"{old['verdict']} -> {new['verdict']}: {new['detail']}".rstrip(": "))
            rank_old, rank_new = VERDICT_RANK[old["verdict"]], VERDICT_RANK[new["verdict"]]
            (result.regressed if rank_new > rank_old else
             result.fixed if rank_new < rank_old else result.changed).append(change)
            continue
        for column in COMPARED_ERRORS:
            grown = _growth(old[column], new[column], factor, floor)
            if grown:
                result.regressed.append(Change(case_id, f"{column} {grown}"))
    return result


def _growth(old, new, factor, floor):
    """A description of the growth from old to new, or None if it is within
    the factor (nan means "not comparable" and is never a growth)."""
    if math.isnan(old) or math.isnan(new) or new <= factor * max(old, floor):
        return None
    ratio = new / max(old, floor)
    return f"{old:.2e} -> {new:.2e} (x{ratio:.3g}, allowed x{factor:g} above {floor:g})"
