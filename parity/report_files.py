"""The run's files: the report being written, its sidecar, atomic writes,
resuming, and merging shards.

A run writing OUT.csv leaves:
  OUT.csv.partial  the rows so far, flushed one by one: a valid CSV at any moment
  OUT.json         the sidecar: run arguments, shard, metadata, completeness
  OUT.csv          every row in case order, written at the end (temporary file,
                   then rename), when OUT.csv.partial is removed
"""
from contextlib import contextmanager
import csv
import datetime
import heapq
import itertools
import json
import os
from pathlib import Path
import shutil
import tempfile

from .plan import WHOLE, RunSpec, Shard, plan
from .report import COLUMNS, ReportError, Summary, iter_report


class CampaignError(ValueError):
    """A run or merge that cannot go ahead (the CLI exits with status 2)."""


def case_order(spec, header):
    """The sort key of a report's CSV rows (lists of strings, in ``header``'s
    columns): families in the run's order, then seed and index."""
    rank = {family: i for i, family in enumerate(spec.families)}
    family, seed, index = (header.index(column) for column in ("family", "seed", "index"))
    return lambda row: (rank.get(row[family], len(rank)), int(row[seed]), int(row[index]))


def ordered_rows(paths, spec):
    """(header, rows): the data rows of the CSV files at ``paths``, merged
    into case order.  Each file is cut into its ascending runs (a run's
    workers deliver rows in case order, so a file has one run per
    invocation that wrote it) and the runs are merged: memory holds a row
    per run, not the rows."""
    header = _header(paths[0])
    key = case_order(spec, header)
    runs = [_rows_of(path, start, stop) for path in paths for start, stop in _ascending_runs(path, key)]
    return header, heapq.merge(*runs, key=key)


def _header(path):
    with open(path, newline="") as file:
        return next(csv.reader(file), [])


def _rows_of(path, start=0, stop=None):
    with open(path, newline="") as file:
        yield from itertools.islice(csv.reader(file), start + 1, None if stop is None else stop + 1)


def _ascending_runs(path, key):
    """[(start, stop)]: row numbers of the maximal ascending runs of a CSV."""
    runs, start, last = [], 0, None
    for i, row in enumerate(_rows_of(path)):
        current = key(row)
        if last is not None and current <= last:
            runs.append((start, i))
            start = i
        last = current
    return runs + [(start, i + 1)] if last is not None else runs


def write_ordered(paths, spec, out, limit=100):
    """Write the rows of ``paths`` to ``out`` (atomically) in case order, and
    return their Summary; a case in two rows is a CampaignError."""
    header, rows = ordered_rows(paths, spec)
    key = case_order(spec, header)
    with atomic_file(out) as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        last = None
        for row in rows:
            if last is not None and key(row) == last:
                raise CampaignError(f"case {row[header.index('case_id')]} is in more than one row")
            last = key(row)
            writer.writerow(row)
    summary = Summary(limit)
    for chunk in iter_report(out):
        summary.add(chunk)
    return summary


def sidecar_path(out):
    return Path(out).with_suffix(".json")


def partial_path(out):
    return Path(f"{out}.partial")


def write_atomic(path, text):
    """Write ``text`` to a temporary file beside ``path``, then rename it over
    ``path``: a reader sees the old file or the new one, never half of one."""
    with atomic_file(path) as file:
        file.write(text)


def copy_atomic(source, path):
    with atomic_file(path) as file, open(source, newline="") as original:
        shutil.copyfileobj(original, file)


@contextmanager
def atomic_file(path):
    """A text file to write that replaces ``path`` when the block ends
    without an exception (and is deleted otherwise)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; a report is not
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def read_sidecar(out):
    path = sidecar_path(out)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CampaignError(f"{path}: no such file (the run's sidecar, written by `parity run`)") from None
    except (OSError, ValueError) as exc:
        raise CampaignError(f"{path}: unreadable sidecar: {exc}") from None


class RowWriter:
    """Appends rows to a CSV, flushing each, so that the file is a valid CSV
    of every finished case whenever the run stops."""

    def __init__(self, path, append):
        fresh = not append or not Path(path).exists() or Path(path).stat().st_size == 0
        if not fresh:
            _drop_torn_line(path)
        self.file = open(path, "a" if append else "w", newline="")
        self.writer = csv.DictWriter(self.file, COLUMNS, extrasaction="ignore", lineterminator="\n")
        if fresh:
            self.writer.writeheader()
            self.file.flush()

    def write_all(self, rows):
        self.writer.writerows(rows)
        self.file.flush()

    def close(self):
        self.file.close()


def _drop_torn_line(path):
    # A kill in the middle of a write can leave a last line without its
    # newline: that row did not finish, and its case runs again.
    data = Path(path).read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def resumable_rows(spec, shard, out):
    """The case_ids already done by the run being resumed into ``out``."""
    partial = partial_path(out)
    if not partial.exists():
        if not out.exists():
            raise CampaignError(f"nothing to resume: neither {partial} nor {out} exists")
        copy_atomic(out, partial)  # a finished run: rerun nothing, rewrite the same
    sidecar = read_sidecar(out)
    if sidecar.get("args") != spec.to_json() or sidecar.get("shard") != list(shard):
        raise CampaignError(f"cannot resume {out}: it was run with other arguments "
                            f"({_difference(sidecar, spec, shard)})")
    _drop_torn_line(partial)
    try:
        done = {case_id for chunk in iter_report(partial) for case_id in chunk["case_id"]}
    except ReportError as exc:
        raise CampaignError(f"cannot resume: {exc}") from None
    strangers = set(done)
    for group in plan(spec, shard):
        strangers.difference_update(case.case_id for case in group)
    if strangers:
        raise CampaignError(f"cannot resume {out}: it has cases this run does not plan, e.g. {min(strangers)}")
    return done


def _difference(sidecar, spec, shard):
    theirs = {**sidecar.get("args", {}), "shard": sidecar.get("shard")}
    ours = {**spec.to_json(), "shard": list(shard)}
    return "; ".join(f"{key}: {theirs.get(key)!r} there, {ours[key]!r} here"
                     for key in ours if theirs.get(key) != ours[key])


# -- merging shards -----------------------------------------------------------------
def merge(paths, out):
    """Join every shard's report into ``out`` (and its sidecar): the same rows
    as the run without shards.  Refuses reports of other runs, unfinished
    ones, a missing shard, and shards that overlap."""
    if not paths:
        raise CampaignError("merge needs at least one report")
    sidecars = [read_sidecar(path) for path in paths]
    first = sidecars[0]
    for path, sidecar in zip(paths, sidecars):
        if sidecar.get("args") != first.get("args"):
            raise CampaignError(f"{path} is from another run than {paths[0]}: "
                                f"{_difference(sidecar, RunSpec.from_json(first['args']), first['shard'])}")
        if not sidecar.get("complete"):
            raise CampaignError(f"{path} is an unfinished run: finish it with `parity run ... --resume` first")
    shards = [Shard(*s["shard"]) for s in sidecars]
    if len({s.n for s in shards}) > 1:
        raise CampaignError(f"shards of different splits: {', '.join(map(str, shards))}")
    if len(set(shards)) < len(shards):
        raise CampaignError(f"the same shard given twice: {', '.join(map(str, shards))}")
    missing = sorted(set(range(1, shards[0].n + 1)) - {s.k for s in shards})
    if missing:
        raise CampaignError(f"missing shard(s) {', '.join(f'{k}/{shards[0].n}' for k in missing)}")

    headers = [_header(path) for path in paths]
    for path, header in zip(paths, headers):
        if header != headers[0]:
            raise CampaignError(f"{path} has other columns than {paths[0]}")
        try:
            for _ in iter_report(path):  # every value checked, a chunk at a time
                pass
        except ReportError as exc:
            raise CampaignError(f"cannot merge: {exc}") from None
    try:
        summary = write_ordered(paths, RunSpec.from_json(first["args"]), out)
    except CampaignError as exc:
        raise CampaignError(f"shards overlap: {exc}") from None
    # The first shard's metadata and tolerances stand for all (same arguments).
    # Each shard's diagnosis saw its own cases only: `parity diagnose` the merged report.
    merged = {**first, "diagnosis": None, "shard": list(WHOLE), "complete": True, "cases": summary.cases,
              "planned": sum(s.get("planned", 0) for s in sidecars), "verdicts": summary.verdict_counts(),
              "merged_from": [str(p) for p in paths], "finished": now()}
    write_atomic(sidecar_path(out), json.dumps(merged, indent=2) + "\n")
    return summary, merged
