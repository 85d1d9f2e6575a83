"""Reports nothing can corrupt (issue 17): one test (or a few) per way a
careless or unlucky user broke them - two writers on one output, a resume
after the engine changed, emptied shards, devices and directories as
--out, full and read-only disks, malformed sidecars and numbers, formulas
in cells, orphaned helpers, a learner's engine.py shadowing ours, and a
compare against nothing.  Each ends with a clean refusal (exit status 2,
one line) or a correct report, and nothing lost."""
import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity import report_files
from parity.campaign import run
from parity.cli import main
from parity.plan import RunSpec, Shard
from parity.report import read_report
from parity.report_files import CampaignError, partial_path, sidecar_path
from parity.run_lock import OutputBusy, lock_path, output_lock

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SMALL = RunSpec(families=("accumulation", "edges"), cases=12)
# Our engine behind a file spec, slow to import: a run that holds its
# output for a few seconds before its first row.
SLOW_ENGINE = "import time\ntime.sleep({seconds})\nfrom engine import Value  # noqa: F401  (ours)\n"
# An engine whose import waits until the test creates the file ``release``
# (two minutes at most): a run of it holds its output for as long as the test wants.
GATED_ENGINE = ("import os, time\nfor _ in range(1200):\n    if os.path.exists({release!r}):\n        break\n"
                "    time.sleep(0.1)\nfrom engine import Value  # noqa: F401  (ours)\n")


def parity(*argv, cwd=ROOT, **keywords):
    return subprocess.run([sys.executable, "-m", "parity.cli", *map(str, argv)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300, **keywords)


def start(*argv, cwd=ROOT):
    return subprocess.Popen([sys.executable, "-m", "parity.cli", *map(str, argv)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def refused(capsys, *argv):
    """main(argv) exits 2 with one `parity: error:` line, its last: that line.
    What the test's earlier commands printed is dropped first; a run that
    started before it was refused may have printed its plan line."""
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    *before, last = err.splitlines(keepends=True)
    assert last.startswith("parity: error: ") and "Traceback" not in err, err
    assert all(" cases planned (" in line for line in before), err
    return last


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def slow_engine(tmp_path, seconds=2):
    path = tmp_path / "slow_engine.py"
    path.write_text(SLOW_ENGINE.format(seconds=seconds))
    return f"{path}:Value"


# -- one writer per output -----------------------------------------------------------
def test_a_second_run_on_the_same_out_is_refused_at_once_naming_the_first(tmp_path):
    """Refused while the first run still holds its output (its engine's
    import waits for the test): not after it, however loaded the machine."""
    out, release = tmp_path / "run.csv", tmp_path / "release"
    engine = tmp_path / "gated_engine.py"
    engine.write_text(GATED_ENGINE.format(release=str(release)))
    # --timeout 60: the engine's import may wait 2 x 60 s (the second run's start on a loaded machine)
    argv = ["run", "--engine", f"{engine}:Value", "--families", "accumulation", "--cases-per-family", "8",
            "--timeout", "60", "--out", out]
    first = start(*argv)
    try:
        wait_for(lambda: lock_path(out).exists() and lock_path(out).read_text().strip())
        second = parity(*argv)
        assert first.poll() is None  # at once: the first run is still waiting for its engine
        release.touch()
        assert second.returncode == 2, second.stderr
        assert f"being written by another parity process (pid {first.pid}" in second.stderr
        assert second.stderr.count("\n") == 1
    finally:
        release.touch()
        stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert list(read_report(out)["case_id"]) == [f"accumulation-0-{i}" for i in range(8)]
    assert not lock_path(out).exists() and not partial_path(out).exists()


def test_two_resumes_of_one_run_one_finishes_the_other_is_refused(tmp_path):
    out = tmp_path / "run.csv"
    engine = slow_engine(tmp_path)
    argv = ["run", "--engine", engine, "--families", "accumulation", "--cases-per-family", "8", "--out", out]
    interrupted(tmp_path, RunSpec(engine=engine, families=("accumulation",), cases=8), out, keep=3)
    resumes = [start(*argv, "--resume")]
    wait_for(lambda: lock_path(out).exists() and lock_path(out).read_text().strip())
    resumes.append(start(*argv, "--resume"))
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in resumes]
    assert results[0][0] == 0, results[0][1]
    assert results[1][0] == 2 and f"pid {resumes[0].pid}" in results[1][1]
    rows = read_report(out)  # every case once: nothing duplicated, nothing lost
    assert list(rows["case_id"]) == [f"accumulation-0-{i}" for i in range(8)]


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    out = tmp_path / "run.csv"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from parity.run_lock import output_lock\n"
                               f"with output_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(OutputBusy, match=f"pid {holder.pid}"):
        run(SMALL, out)
    holder.kill()
    holder.wait()
    assert lock_path(out).read_text() == f"{holder.pid}\n"  # left behind, stale
    run(SMALL, out)
    assert len(read_report(out)) == 24 and not lock_path(out).exists()


def test_a_lock_is_held_by_one_holder_at_a_time(tmp_path):
    out = tmp_path / "x.csv"
    with output_lock(out):
        with pytest.raises(OutputBusy, match=f"pid {os.getpid()}"):
            with output_lock(out):
                pass
    with output_lock(out):  # released
        pass


# -- resume and merge check what they join -------------------------------------------
def interrupted(tmp_path, spec, out, keep):
    """What an interrupted run of ``spec`` into ``out`` leaves: its sidecar
    (not complete) and a partial file of its first ``keep`` rows."""
    whole = tmp_path / "whole" / "whole.csv"
    run(spec, whole)
    lines = whole.read_text().splitlines(keepends=True)
    partial_path(out).write_text("".join(lines[:keep + 1]))
    sidecar = json.loads(sidecar_path(whole).read_text())
    sidecar_path(out).write_text(json.dumps({**sidecar, "complete": False}))


def test_resume_refuses_an_engine_whose_source_changed(tmp_path, capsys):
    engine = tmp_path / "mine.py"
    engine.write_text("from engine import Value  # noqa: F401\n")
    spec = RunSpec(engine=f"{engine}:Value", families=("accumulation",), cases=6)
    out = tmp_path / "run.csv"
    interrupted(tmp_path, spec, out, keep=2)
    engine.write_text("from engine import Value  # noqa: F401\n# fixed something\n")
    argv = ["run", "--engine", spec.engine, "--families", "accumulation", "--cases-per-family", "6", "--out", out]
    err = refused(capsys, *argv, "--resume")
    assert ("the engine's source changed since the partial was written: start a new run or pass "
            "--resume-anyway") in err
    assert len(read_report(partial_path(out))) == 2  # kept
    assert main([str(a) for a in argv + ["--resume-anyway"]]) == 0
    assert len(read_report(out)) == 6


def test_resume_refuses_when_a_sibling_file_of_the_engine_changed(tmp_path):
    (tmp_path / "helpers.py").write_text("X = 1\n")
    engine = tmp_path / "mine.py"
    engine.write_text("from engine import Value  # noqa: F401\n")
    spec = RunSpec(engine=f"{engine}:Value", families=("accumulation",), cases=4)
    out = tmp_path / "run.csv"
    interrupted(tmp_path, spec, out, keep=1)
    (tmp_path / "helpers.py").write_text("X = 2\n")
    with pytest.raises(CampaignError, match="engine's source changed"):
        run(spec, out, resume=True)


def shards_of(tmp_path, spec=SMALL):
    shards = [tmp_path / f"shard{k}.csv" for k in (1, 2)]
    for k, shard in enumerate(shards, start=1):
        run(spec, shard, Shard(k, 2))
    return shards


@pytest.mark.parametrize("damage", ["emptied", "truncated", "a row swapped"])
def test_merge_refuses_a_shard_whose_rows_are_not_its_sidecar_s(tmp_path, capsys, damage):
    shards = shards_of(tmp_path)
    header, *lines = shards[1].read_text().splitlines(keepends=True)
    other = shards[0].read_text().splitlines(keepends=True)[1]
    shards[1].write_text(header + "".join({"emptied": [], "truncated": lines[:5],
                                           "a row swapped": [other] + lines[1:]}[damage]))
    merged = tmp_path / "merged.csv"
    err = refused(capsys, "merge", *shards, "--out", merged)
    assert f"{shards[1]} has" in err and "the report changed after its run" in err
    assert not merged.exists() and not sidecar_path(merged).exists()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_merge_records_the_rows_it_wrote(tmp_path, capsys):
    shards = shards_of(tmp_path)
    merged = tmp_path / "merged.csv"
    assert main([str(a) for a in ("merge", *shards, "--out", merged)]) == 0
    sidecar = json.loads(sidecar_path(merged).read_text())
    assert sidecar["complete"] and sidecar["cases"] == sidecar["rows"]["count"] == sidecar["planned"] == 24
    assert sidecar["identity"] == json.loads(sidecar_path(shards[0]).read_text())["identity"]


# -- compare refuses half a report ------------------------------------------------------
def test_compare_refuses_an_empty_or_unfinished_current_report(tmp_path, capsys):
    baseline = tmp_path / "baseline.csv"
    run(SMALL, baseline)
    empty = tmp_path / "empty.csv"
    empty.write_text(baseline.read_text().splitlines(keepends=True)[0])
    assert "has no rows" in refused(capsys, "compare", baseline, empty)
    unfinished = tmp_path / "unfinished.csv"
    unfinished.write_text(baseline.read_text())
    sidecar = json.loads(sidecar_path(baseline).read_text())
    sidecar_path(unfinished).write_text(json.dumps({**sidecar, "complete": False}))
    assert "unfinished run" in refused(capsys, "compare", baseline, unfinished)
    cut = tmp_path / "cut.csv"
    cut.write_text("".join(baseline.read_text().splitlines(keepends=True)[:10]))
    sidecar_path(cut).write_text(sidecar_path(baseline).read_text())
    assert "has 9 rows, not the 24 its run wrote" in refused(capsys, "compare", baseline, cut)
    # Told otherwise, it compares: 15 cases missing, no regression.
    assert main(["compare", str(baseline), str(cut), "--allow-incomplete"]) == 0
    assert "missing: 15" in capsys.readouterr().out


# -- safe output paths --------------------------------------------------------------------
def test_a_device_is_never_replaced(tmp_path, capsys):
    err = refused(capsys, "run", "--families", "accumulation", "--cases-per-family", "2", "--out", "/dev/null")
    assert "/dev/null is a character device, not a regular file" in err
    assert Path("/dev/null").is_char_device()
    link = tmp_path / "link.csv"
    link.symlink_to("/dev/null")
    assert "is a character device" in refused(capsys, "run", "--families", "accumulation", "--out", link)
    assert link.is_symlink() and Path("/dev/null").is_char_device()


@pytest.mark.parametrize("kind", ["directory", "fifo", "sidecar directory", "dangling symlink"])
def test_out_must_be_a_regular_file_path(tmp_path, capsys, kind):
    out = tmp_path / "run.csv"
    if kind == "directory":
        out.mkdir()
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "sidecar directory":
        sidecar_path(out).mkdir()
    else:
        out.symlink_to(tmp_path / "nowhere" / "x.csv")
    before = sorted(os.listdir(tmp_path))
    err = refused(capsys, "run", "--families", "accumulation", "--cases-per-family", "2", "--out", out)
    assert str(tmp_path) in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_a_symlink_to_a_regular_file_keeps_its_link(tmp_path):
    target = tmp_path / "runs" / "real.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    report_files.write_atomic(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"


def test_atomic_replacement_refuses_a_file_that_is_no_longer_regular(tmp_path):
    fifo = tmp_path / "x.csv"
    os.mkfifo(fifo)
    with pytest.raises(CampaignError, match="is a FIFO, not a regular file"):
        report_files.write_atomic(fifo, "text\n")
    assert fifo.is_fifo() and os.listdir(tmp_path) == ["x.csv"]


# -- full and read-only disks -----------------------------------------------------------------
def test_a_full_disk_mid_run_keeps_a_valid_partial_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run.csv"
    writes, real_write = [], os.write

    def filling_up(fd, data):
        if fd == getattr(filling_up, "fd", None):
            writes.append(len(data))
            if len(writes) == 4:  # half of the 4th batch lands, then the disk is full
                real_write(fd, bytes(data[:len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    real_init = report_files.RowWriter.__init__

    def init(self, *arguments, **keywords):
        real_init(self, *arguments, **keywords)
        filling_up.fd = self.fd

    monkeypatch.setattr(report_files.RowWriter, "__init__", init)
    monkeypatch.setattr(report_files.os, "write", filling_up)
    err = refused(capsys, "run", "--families", "accumulation,edges", "--cases-per-family", "12", "--out", out)
    assert "No space left on device" in err and "--resume" in err
    kept = read_report(partial_path(out))  # readable: no half row survives
    assert 0 < len(kept) < 24 and partial_path(out).read_bytes().endswith(b"\n")
    monkeypatch.undo()
    assert main(["run", "--families", "accumulation,edges", "--cases-per-family", "12", "--out", str(out), "--resume"]) == 0
    assert len(read_report(out)) == 24


def test_a_read_only_file_system_is_a_clean_refusal(tmp_path, capsys, monkeypatch):
    def read_only(*arguments, **keywords):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(report_files.tempfile, "mkstemp", read_only)
    err = refused(capsys, "run", "--families", "accumulation", "--cases-per-family", "2", "--out", tmp_path / "run.csv")
    assert "cannot write" in err and "Read-only file system" in err and "run.json" in err


def test_readers_reject_a_torn_last_line(tmp_path, capsys):
    report = tmp_path / "run.csv"
    run(SMALL, report)
    report.write_bytes(report.read_bytes()[:-7])
    assert "its last line is cut" in refused(capsys, "report", report)


def test_an_overflowing_int_is_a_clean_refusal(tmp_path, capsys):
    report = tmp_path / "run.csv"
    run(SMALL, report)
    rows = list(csv.reader(report.open()))
    rows[3][rows[0].index("n_nodes")] = "99999999999999999999999"
    with report.open("w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(rows)
    err = refused(capsys, "report", report)
    assert "line 4: column n_nodes: cannot parse '99999999999999999999999'" in err


# -- malformed sidecars -------------------------------------------------------------------------
@pytest.mark.parametrize("edit, message", [
    (lambda s: [1, 2, 3], "a JSON object expected, found an array"),
    (lambda s: None, "a JSON object expected, found null"),
    (lambda s: {**s, "shard": [1]}, "field 'shard': expected 2 items"),
    (lambda s: {**s, "args": {**s["args"], "families": ["expr", "nope"]}}, "field 'args': unknown families"),
    (lambda s: {k: v for k, v in s.items() if k != "args"}, "field 'args': missing"),
    (lambda s: {**s, "planned": "many"}, "field 'planned': expected an integer, found a string \"many\""),
    (lambda s: {**s, "metadata": json.loads("[" * 100 + "]" * 100)}, "nested deeper than 64 levels"),
    (lambda s: {**s, "complete": 1}, "field 'complete': expected a boolean"),
])
def test_a_malformed_sidecar_is_a_clean_refusal_and_nothing_is_written(tmp_path, capsys, edit, message):
    shards = shards_of(tmp_path)
    sidecar = json.loads(sidecar_path(shards[1]).read_text())
    sidecar_path(shards[1]).write_text(json.dumps(edit(sidecar)))
    merged = tmp_path / "merged.csv"
    err = refused(capsys, "merge", *shards, "--out", merged)
    assert str(sidecar_path(shards[1])) in err and message in err
    assert not merged.exists() and not sidecar_path(merged).exists()


def test_json_nested_100000_deep_is_a_clean_refusal(tmp_path, capsys):
    shards = shards_of(tmp_path)
    sidecar_path(shards[0]).write_text("[" * 100_000 + "]" * 100_000)
    merged = tmp_path / "merged.csv"
    assert "nested too deeply" in refused(capsys, "merge", *shards, "--out", merged)
    assert not merged.exists() and not sidecar_path(merged).exists()
    assert "nested too deeply" in refused(capsys, "replay", "--json", "{\"graph\": " + "[" * 100_000)


# -- no formula in a cell -------------------------------------------------------------------------
def test_no_cell_of_a_report_is_a_formula(tmp_path):
    out = tmp_path / "run.csv"
    run(RunSpec(engine="tests/engines/hostile/formula_exception.py:Value", families=("accumulation",), cases=6), out)
    rows = list(csv.DictReader(out.open(newline="")))
    details = [row["detail"] for row in rows if row["verdict"] == "error"]
    assert details and all(d.startswith("'=HYPERLINK(") for d in details)
    for row in rows:
        for column in report_files.TEXT_COLUMNS:
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), (column, row[column])


def test_every_text_cell_written_is_neutralised(tmp_path):
    path = tmp_path / "rows.csv"
    writer = report_files.RowWriter(path, append=False)
    writer.write_all([{"case_id": "expr-0-0", "engine": "=cmd|' /C calc'!A0", "ops": "@sum", "name": "\tx",
                       "detail": "-2+3", "replay": "+1", "seed": -1}])
    writer.close()
    (row,) = csv.DictReader(path.open(newline=""))
    assert (row["engine"], row["ops"], row["name"], row["detail"], row["replay"]) == (
        "'=cmd|' /C calc'!A0", "'@sum", "'\tx", "'-2+3", "'+1")
    assert row["seed"] == "-1"  # numbers stay numbers


# -- no orphans -------------------------------------------------------------------------------------
def descendants(pid):
    """The pids of ``pid``'s descendants, from /proc (each with its start time)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def alive(pid, started):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"  # a zombie has ended


def test_killing_the_run_leaves_no_process_behind(tmp_path):
    out = tmp_path / "run.csv"
    engine = slow_engine(tmp_path, seconds=0)
    parent = start("run", "--engine", engine, "--workers", "2", "--families", "expr", "--cases-per-family", "3000",
                   "--out", out, cwd=tmp_path)
    try:
        wait_for(lambda: partial_path(out).exists() and partial_path(out).read_text().count("\n") > 20, 120)
        helpers = descendants(parent.pid)
        # The fork server, 2 judges, their 2 sandboxed engine workers (and the resource tracker).
        assert len(helpers) >= 5, helpers
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not any(alive(*helper) for helper in helpers), 15)
    finally:
        if parent.poll() is None:
            parent.kill()


# -- the harness's imports cannot be shadowed ---------------------------------------------------
def test_a_learner_s_engine_py_and_concurrent_py_shadow_nothing(tmp_path):
    (tmp_path / "engine.py").write_text("raise SystemExit('the learner engine.py was imported')\n")
    (tmp_path / "concurrent.py").write_text("raise SystemExit('a concurrent.py was imported')\n")
    out = tmp_path / "run.csv"
    done = parity("run", "--workers", "2", "--families", "accumulation,edges", "--cases-per-family", "12", "--out", out,
                  "--isolation", "process", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read_report(out)
    assert len(rows) == 24 and set(rows["verdict"]) == {"pass"}
    # Named with --engine, it is loaded (and here refuses to be).
    done = parity("run", "--engine", "./engine.py:Value", "--families", "accumulation", "--cases-per-family", "2",
                  "--out", tmp_path / "mine.csv", cwd=tmp_path)
    assert "the learner engine.py was imported" in done.stdout + done.stderr
