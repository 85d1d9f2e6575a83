"""The run's files: the report being written, its sidecar, atomic writes,
resuming, and merging shards.

A run writing OUT.csv leaves:
  OUT.csv.partial  the rows so far, flushed one by one: a valid CSV at any moment
  OUT.json         the sidecar: run arguments, shard, metadata, completeness
  OUT.csv          every row in case order, written at the end (temporary file,
                   then rename), when OUT.csv.partial is removed
  OUT.csv.lock     while a run writes them (run_lock.py): one writer per output

Every path written is a regular file in a writable directory, checked before
any work (check_output), and only a regular file is ever replaced.  A write
that fails (a full or read-only disk) leaves every file as it was before
that write: the partial loses no finished row and never keeps half of one.
"""
from contextlib import contextmanager
import csv
import datetime
import glob
import heapq
import itertools
import json
import os
from pathlib import Path
import io
import shutil
import stat
import tempfile

from .plan import WHOLE, RunSpec, Shard, plan, planned_ids
from .report import BOOL_COLUMNS, COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, ReportError, Summary, iter_report
from .sandbox.text import no_formula
from .sidecar import RowDigest, identity_change, read_sidecar, rows_of, sidecar_path  # noqa: F401  (re-exported)

# The columns that hold text: each cell goes through no_formula (no spreadsheet formula).
TEXT_COLUMNS = tuple(c for c in COLUMNS if c not in INT_COLUMNS + FLOAT_COLUMNS + BOOL_COLUMNS)


class CampaignError(ValueError):
    """A run or merge that cannot go ahead (the CLI exits with status 2)."""


class RepeatedCase(CampaignError):
    """A case in more than one row of the rows to write."""


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
    return their Summary and their ``rows`` (sidecar.RowDigest's JSON); a
    case in two rows is a CampaignError."""
    with staged_ordered(paths, spec, out, limit) as (summary, rows):
        pass
    return summary, rows


@contextmanager
def staged_ordered(paths, spec, out, limit=100):
    """write_ordered's file, staged: the block gets (Summary, rows) while
    the file is still a temporary one, and ``out`` is replaced only if the
    block ends without an exception (say, writing the sidecar first)."""
    header, rows = ordered_rows(paths, spec)
    key = case_order(spec, header)
    text_cells = [i for i, column in enumerate(header) if column in TEXT_COLUMNS]
    case_id = header.index("case_id")
    digest = RowDigest()
    with atomic_file(out) as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        last = None
        for row in rows:
            if last is not None and key(row) == last:
                raise RepeatedCase(f"case {row[case_id]} is in more than one row")
            last = key(row)
            for i in text_cells:
                row[i] = no_formula(row[i])
            digest.add(row[case_id])
            writer.writerow(row)
        file.flush()
        summary = Summary(limit)
        for chunk in iter_report(file.name):
            summary.add(chunk)
        yield summary, digest.to_json()


def partial_path(out):
    return Path(f"{out}.partial")


def check_output(out):
    """CampaignError unless ``out`` and the files beside it that a run
    writes can be written as regular files: no device (/dev/null), FIFO,
    directory or symlink to one; a directory that exists (or can be made)
    and is writable.  Called before any work."""
    out = Path(out)
    if sidecar_path(out) == out:
        raise CampaignError(f"--out {out}: its sidecar would be the report itself; name it .csv")
    check_writable(out)
    for path in (partial_path(out), sidecar_path(out), Path(f"{out}.lock"), out.with_suffix(".engine.log")):
        _check_regular(path)


def check_writable(path, option="--out"):
    """CampaignError unless ``path`` can be written as a regular file: its
    directory exists (or can be made) and is writable, and it is no
    device, FIFO, directory or symlink to one."""
    path = Path(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CampaignError(f"{option} {path}: cannot make its directory {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CampaignError(f"{option} {path}: cannot write in its directory {directory} (read-only or not yours)")
    _check_regular(path)


def _check_regular(path):
    """CampaignError if ``path`` exists and is not a regular file (a symlink
    to one is fine: its target is what is replaced)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise CampaignError(f"{path}: a symlink to nothing; remove it or write elsewhere") from None
        return
    except OSError as exc:
        raise CampaignError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise CampaignError(f"{path} is {_file_kind(mode)}, not a regular file: a report is only ever written "
                            f"to (and replaces) a regular file")


def _file_kind(mode):
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


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
    without an exception (and is deleted otherwise).  Only a regular file
    is replaced (through a symlink, its target); an OSError (a full or
    read-only disk) is a CampaignError naming the file."""
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    _check_regular(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        with open(tmp, "w", newline="") as file:  # file.name: where it is, until it replaces path
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; a report is not
        _check_regular(path)  # again: it may have changed meanwhile
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise CampaignError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            os.unlink(tmp)


def _umask():
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


class RowWriter:
    """Appends rows to a CSV, each batch in one write that is undone if it
    fails (a full disk): the file is a valid CSV of every finished case
    whenever the run stops, never with half a row."""

    def __init__(self, path, append):
        self.path = path
        fresh = not append or not Path(path).exists() or Path(path).stat().st_size == 0
        if not fresh:
            _drop_torn_line(path)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC),
                              0o666)
        except OSError as exc:
            raise CampaignError(f"cannot write {path}: {exc.strerror}") from None
        self.size = os.fstat(self.fd).st_size  # where the last whole batch ends
        if fresh:
            self._write(",".join(COLUMNS) + "\n")

    def write_all(self, rows):
        text = io.StringIO()
        writer = csv.DictWriter(text, COLUMNS, extrasaction="ignore", lineterminator="\n")
        for row in rows:
            writer.writerow({**row, **{c: no_formula(row[c]) for c in TEXT_COLUMNS
                                       if isinstance(row.get(c), str)}})
        self._write(text.getvalue())

    def _write(self, text):
        data = text.encode()
        left = memoryview(data)
        try:
            while left:
                left = left[os.write(self.fd, left):]
        except OSError as exc:
            try:
                os.ftruncate(self.fd, self.size)  # no half row (a reader would reject the file)
            except OSError:
                pass  # readers reject a cut last line, and a resume drops it
            raise CampaignError(f"cannot write {self.path}: {exc.strerror}; the rows finished before are kept "
                                f"there: continue with --resume once it can be written") from None
        self.size += len(data)

    def close(self):
        os.close(self.fd)


def _drop_torn_line(path):
    # A kill in the middle of a write can leave a last line without its
    # newline: that row did not finish, and its case runs again.
    data = Path(path).read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def resumable_rows(spec, shard, out, identity, anyway=False):
    """The case_ids already done by the run being resumed into ``out``, if
    it was run with the same arguments and, unless ``anyway``, the same
    engine source, adapter, harness version and case plan (``identity``,
    sidecar.identity's)."""
    partial = partial_path(out)
    if not partial.exists() and not out.exists():
        raise CampaignError(f"nothing to resume: neither {partial} nor {out} exists")
    sidecar = read_sidecar(out)
    if sidecar["args"] != spec.to_json() or sidecar["shard"] != list(shard):
        theirs = {**sidecar["args"], "shard": sidecar["shard"]}
        raise CampaignError(f"cannot resume {out}: it was run with other arguments "
                            f"({_difference(theirs, {**spec.to_json(), 'shard': list(shard)})})")
    change = identity_change(sidecar.get("identity"), identity)
    if change and not anyway:
        raise CampaignError(f"cannot resume {out}: {change}: start a new run or pass --resume-anyway "
                            f"(its rows would all be credited to the engine as it is now)")
    if not partial.exists():
        copy_atomic(out, partial)  # a finished run: rerun nothing, rewrite the same
    _drop_torn_line(partial)
    try:
        done = {case_id for chunk in iter_report(partial) for case_id in chunk["case_id"]}
    except ReportError as exc:
        raise CampaignError(f"cannot resume: {exc}") from None
    if shard == WHOLE:  # by the ids' numbers: a million-case plan is not built to check them
        planned = planned_ids(spec)
        strangers = {case_id for case_id in done if not planned(case_id)}
    else:
        strangers = set(done)
        for group in plan(spec, shard):
            strangers.difference_update(case.case_id for case in group)
    if strangers:
        raise CampaignError(f"cannot resume {out}: it has cases this run does not plan, e.g. {min(strangers)}")
    return done


def _difference(theirs, ours, there="there", here="here"):
    """The keys of ``ours`` whose values differ in ``theirs``, in words."""
    keys = list(ours) + [key for key in theirs if key not in ours]  # a key one side lacks (a default) too
    return "; ".join(f"{key}: {theirs.get(key)!r} {there}, {ours.get(key)!r} {here}"
                     for key in keys if theirs.get(key) != ours.get(key))


# -- merging shards -----------------------------------------------------------------
def shard_reports(arguments, out):
    """The reports ``parity merge`` names: each argument a report, a
    directory or a glob (quoted, so that the shell leaves it to us;
    ``**`` descends, as into download-artifact's folders).  A directory
    gives its reports and the reports of its unfinished runs (their
    .csv.partial), so that the merge names an unfinished shard rather than
    call it missing.  ``out`` is never among a directory's or a glob's
    reports: a merge into the directory of its shards can be repeated."""
    paths = []
    for argument in map(str, arguments):
        if os.path.isdir(argument):
            found, what = _reports_in(Path(argument)), "a directory holding"
        elif argument.endswith(("/", os.sep)):
            raise CampaignError(f"{argument}: no such directory")
        elif not os.path.lexists(argument) and any(c in argument for c in "*?["):
            found, what = [Path(p) for p in sorted(glob.glob(argument, recursive=True))], "a glob matching"
        else:
            paths.append(Path(argument))
            continue
        found = [path for path in found if os.path.realpath(path) != os.path.realpath(out)]
        if not found:
            raise CampaignError(f"{argument}: {what} no report (*.csv)")
        paths += found
    return paths


def _reports_in(directory):
    unfinished = {Path(str(p).removesuffix(".partial")) for p in directory.glob("*.csv.partial")}
    return sorted(set(directory.glob("*.csv")) | unfinished)


def merge(paths, out):
    """Join every shard's report into ``out`` (and its sidecar): the same rows
    as the run without shards.  Refuses reports of other runs or engines,
    unfinished ones, a missing shard, shards that overlap, and a shard whose
    rows are not the ones its sidecar counted, naming the files.  Nothing is
    written unless the merge succeeds."""
    from .run_lock import output_lock

    if not paths:
        raise CampaignError("merge needs at least one report")
    out = Path(out)
    if any(os.path.realpath(out) == os.path.realpath(path) for path in paths):
        raise CampaignError(f"--out {out} is one of the shards: merge into a new file")
    check_output(out)
    sidecars = [read_sidecar(path) for path in paths]
    _check_one_run(paths, sidecars)
    _check_every_shard_once(paths, [Shard(*s["shard"]) for s in sidecars])
    _check_rows(paths, sidecars)
    first = sidecars[0]
    with output_lock(out):
        try:
            with staged_ordered(paths, RunSpec.from_json(first["args"]), out) as (summary, rows):
                # The first shard's metadata and tolerances stand for all (same arguments).
                # Each shard's diagnosis saw its own cases only: `parity diagnose` the merged report.
                merged = {**first, "diagnosis": None, "shard": list(WHOLE), "complete": True,
                          "cases": summary.cases, "planned": sum(s["planned"] for s in sidecars),
                          "verdicts": summary.verdict_counts(), "rows": rows,
                          "merged_from": [str(p) for p in paths], "finished": now()}
                write_atomic(sidecar_path(out), json.dumps(merged, indent=2) + "\n")
        except RepeatedCase as exc:
            raise CampaignError(f"shards overlap: {exc}") from None
    return summary, merged


def _check_one_run(paths, sidecars):
    """Every shard finished, with the first one's arguments and engine identity."""
    first = sidecars[0]
    for path, sidecar in zip(paths, sidecars):
        if sidecar["args"] != first["args"]:
            raise CampaignError(f"{path} is from another run than {paths[0]}: "
                                f"{_difference(sidecar['args'], first['args'], f'in {path}', f'in {paths[0]}')}")
        if not sidecar["complete"]:
            raise CampaignError(f"{path} is an unfinished run: finish it with `parity run ... --resume` first")
        if "rows" not in sidecar or "identity" not in sidecar:
            raise CampaignError(f"{sidecar_path(path)} records no row count or engine identity (written by an "
                                f"older parity): run that shard again")
        change = identity_change(first["identity"], sidecar["identity"], str(paths[0]), str(path))
        if change:
            raise CampaignError(f"{path} is from another run than {paths[0]}: {change}")


def _check_every_shard_once(paths, shards):
    """Shards K/N of one N, each K once, none missing."""
    for path, shard in zip(paths, shards):
        if shard.n != shards[0].n:
            raise CampaignError(f"shards of different splits: {paths[0]} is shard {shards[0]}, {path} is shard {shard}")
    claimed = {}
    for path, shard in zip(paths, shards):
        if shard in claimed:
            who = (f"{path} is named twice" if os.path.realpath(path) == os.path.realpath(claimed[shard])
                   else f"{claimed[shard]} and {path} both claim it")
            raise CampaignError(f"shard {shard} given twice: {who}")
        claimed[shard] = path
    n = shards[0].n
    missing = [f"{k}/{n}" for k in range(1, n + 1) if Shard(k, n) not in claimed]
    if missing:
        shown = ", ".join(missing[:10]) + (f" ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise CampaignError(f"missing shard{'s' if len(missing) > 1 else ''} {shown}: "
                            f"{len(paths)} report(s) given, of {n} shards")


def _check_rows(paths, sidecars):
    """Each CSV holds the rows its sidecar counted, in the first one's columns."""
    for path, sidecar in zip(paths, sidecars):
        try:  # every value checked, a chunk at a time
            rows = rows_of(case_id for chunk in iter_report(path) for case_id in chunk["case_id"])
        except ReportError as exc:
            raise CampaignError(f"cannot merge: {exc}") from None
        if _header(path) != _header(paths[0]):
            raise CampaignError(f"{path} has other columns than {paths[0]}")
        if rows != sidecar["rows"] or rows["count"] != sidecar["cases"]:
            said = sidecar["rows"]["count"]
            raise CampaignError(
                f"{path} has {rows['count']} rows, its sidecar {sidecar_path(path)} counted {said}"
                + ("" if rows["count"] != said else " with other case ids")
                + ": the report changed after its run (emptied, cut or edited): run that shard again")
