"""Isolation: whatever the engine under test does - exit, crash, hang, print
megabytes, patch the judge, write files - the harness stays alive, every
case it hurt gets an `error` (or its `fail`) with the cause, every other case
gets the verdict a well-behaved engine gets, the report reads back, and the
run exits 1.

The hostile engines (tests/engines/hostile/) build on hostile_base.py and
misbehave in tanh's backward where tanh's input is above 1 (2.5 for those
that hang: each costs a timeout): the run of
hostile_base.py itself is the clean run each is compared with.
"""
import csv
import json
import os
from pathlib import Path
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import engine

from parity import cli
from parity.backends.engine import EngineSpecError, load_engine
from parity.case import Case
from parity.graph import Graph, Node
from parity.isolation import Limits
from parity.report import iter_report
from parity.report_files import partial_path
from terminal import start_in_its_own_group


ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "engines" / "hostile"
SMALL = ["--families", "expr", "--ops", "add,mul,neg,sub,tanh", "--cases-per-family", "30", "--max-nodes", "6", "--quiet"]
NOT_JUDGED = ("engine_seconds", "torch_seconds", "engine", "replay")  # what differs between engines' rows


def parity_run(tmp_path, engine, *options, name=None):
    """(exit status, rows by case id) of `parity run` on a hostile engine,
    the report read back both with the csv module and with parity's reader."""
    out = tmp_path / f"{name or engine}.csv"
    status = cli.main(["run", "--engine", f"{HOSTILE / engine}.py:Value", "--out", str(out), *SMALL, *options])
    with open(out, newline="") as file:
        rows = {row["case_id"]: row for row in csv.DictReader(file)}
    assert sum(len(chunk) for chunk in iter_report(out)) == len(rows) == 30
    return status, rows


def judged(row):
    return {column: value for column, value in row.items() if column not in NOT_JUDGED}


# Engines written by a test report what they see through their one channel,
# their numbers: exp(x) gives what the test asks about.
REPORTING_CASE = Case("t-0-0", "expr", 0, 0, Graph(1, (Node("exp", (0,)),), (1,)), [1.0])


def reporting_engine(path, *lines):
    """hostile_base's engine whose exp gives the last line's expression."""
    path.write_text("\n".join(["import os, socket, sys", f"sys.path.insert(0, {str(HOSTILE)!r})",
                                "from hostile_base import Value", *lines[:-1],
                                f"Value.exp = lambda self: Value(float({lines[-1]}))", ""]))
    return f"{path}:Value"


def reported(engine_spec, **options):
    backend = load_engine(engine_spec, **options)
    try:
        return backend.run(REPORTING_CASE).values[0]
    finally:
        backend.close()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    status, rows = parity_run(tmp_path_factory.mktemp("clean"), "hostile_base", "--timeout", "1")
    assert status == 0 and {row["verdict"] for row in rows.values()} == {"pass"}
    return rows


def hurt(rows):
    """The cases a hostile engine hurt: its errors, each a case with a tanh
    (where the hostile engines misbehave)."""
    errors = {case_id for case_id, row in rows.items() if row["verdict"] == "error"}
    assert all("tanh" in rows[case_id]["ops"].split(";") for case_id in errors)
    return errors


@pytest.mark.parametrize("engine, cause", [
    ("sys_exit", "SystemExit: 0"),
    ("raise_system_exit", "SystemExit"),
    ("os_exit", "the engine ended its worker: exit status 0"),
    ("segfault", "killed by SIGSEGV"),
    ("c_loop", "timeout after 0.5 s"),
    ("swallowing_loop", "timeout after 0.5 s (the engine did not return; its worker was killed)"),
    ("blocks_signals", "timeout after 0.5 s (the engine did not return; its worker was killed)"),
    ("huge_message", "ValueError: <script>alert(1)</script>\\n\\x1b[31mxxx"),
    ("unprintable_exception", "'=HYPERLINK(\"http://example.invalid\",\"click\"): <unprintable "),
    ("forges_replies", "the engine's worker sent a malformed reply"),
])
def test_an_engine_that_dies_hangs_or_raises_gets_an_error_on_each_case_it_hurt_and_nothing_else(
        tmp_path, clean, engine, cause):
    status, rows = parity_run(tmp_path, engine, "--timeout", "0.5")
    errors = hurt(rows)
    assert status == 1
    assert 0 < len(errors) < len(rows)
    for case_id, row in rows.items():
        if case_id in errors:
            assert row["detail"].startswith(cause), row["detail"]
            assert len(row["detail"]) < 400 and "\n" not in row["detail"] and "\x1b" not in row["detail"]
        else:
            assert judged(row) == judged(clean[case_id])


def test_a_forged_reply_is_blamed_on_what_forged_it_however_late_it_is_read(tmp_path):
    # Regression: the engine writes to its connection and runs on until the
    # harness reads the garbage; the item its worker is on by then was blamed
    # (the add probe after tanh's, cases after the one that forged, in turn:
    # all 30 cases errors in some runs).  The unanswered items now run again
    # each alone, so the blame, and every row, is the same in every run.
    runs = [parity_run(tmp_path, "forges_replies", "--timeout", "0.5", name=f"run{k}")[1] for k in range(2)]
    assert hurt(runs[0]) == hurt(runs[1]) and 0 < len(hurt(runs[0])) < len(runs[0])
    findings = json.loads((tmp_path / "run0.json").read_text())["diagnosis"]
    assert {finding["op"] for finding in findings if "malformed" in finding["detail"]} == {"tanh"}


def test_a_megabyte_message_is_cut_says_so_and_stays_text_in_the_html_report(tmp_path):
    _, rows = parity_run(tmp_path, "huge_message", "--timeout", "1")
    assert all(row["detail"].endswith("characters, cut]") for row in rows.values() if row["verdict"] == "error")
    page = tmp_path / "report.html"
    assert cli.main(["report", str(tmp_path / "huge_message.csv"), "--html", str(page)]) == 1
    text = page.read_text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_an_engine_that_kills_or_hangs_every_worker_at_import_is_reported_once_and_quickly(tmp_path, capsys):
    for engine, cause in (("import_exit", "exit status 3"), ("import_loop", "timeout after 5 s")):
        start = time.monotonic()
        status, rows = parity_run(tmp_path, engine, "--timeout", "1")
        assert status == 1 and time.monotonic() - start < 30
        assert {row["verdict"] for row in rows.values()} == {"error"}
        assert all(cause in row["detail"] and "while importing the engine" in row["detail"] for row in rows.values())
        assert capsys.readouterr().err.count("the engine ran no case") == 1


@pytest.mark.torch  # the engine bends torch: it imports it
def test_a_buggy_engine_that_bends_torch_mpmath_math_numpy_and_parity_is_still_judged_on_its_bug(tmp_path):
    status, honest = parity_run(tmp_path, "wrong_tanh", "--timeout", "5")
    assert status == 1 and sum(row["verdict"] == "fail" for row in honest.values()) == 30  # every case has a tanh
    status, bending = parity_run(tmp_path, "wrong_tanh_patching_the_judge", "--timeout", "5")
    assert status == 1
    assert {case_id: judged(row) for case_id, row in bending.items()} == {
        case_id: judged(row) for case_id, row in honest.items()}


def test_a_no_op_backward_that_replaces_the_judge_still_fails(tmp_path):
    status, rows = parity_run(tmp_path, "noop_backward_patching_the_judge", "--timeout", "5")
    assert status == 1 and {row["verdict"] for row in rows.values()} == {"fail"}


@pytest.mark.torch  # the engine bends torch: it imports it
def test_in_process_the_judge_s_self_check_refuses_a_bent_judge(tmp_path):
    # In a process of its own: the engine bends the judge of the process it
    # is loaded into, for good.
    done = subprocess.run([sys.executable, "-m", "parity.cli", "run", "--isolation", "none",
                           "--engine", f"{HOSTILE / 'wrong_tanh_patching_the_judge.py'}:Value",
                           "--out", str(tmp_path / "x.csv"), *SMALL],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert "parity: error: the judge failed its own check" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.csv").exists()


def test_a_memory_bomb_stops_at_the_cap(tmp_path, clean):
    status, rows = parity_run(tmp_path, "memory_bomb", "--timeout", "10", "--memory-limit", "512M")
    errors = hurt(rows)
    assert status == 1 and errors
    for case_id, row in rows.items():
        if case_id in errors:
            assert row["detail"].startswith("MemoryError") and "--memory-limit" in row["detail"]
        else:
            assert judged(row) == judged(clean[case_id])


def test_printing_megabytes_changes_nothing(tmp_path, clean):
    status, rows = parity_run(tmp_path, "chatty", "--timeout", "5")
    assert status == 0
    assert {case_id: judged(row) for case_id, row in rows.items()} == {
        case_id: judged(row) for case_id, row in clean.items()}


def test_an_engine_writes_only_into_its_own_temporary_directory(tmp_path, monkeypatch, clean):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "baseline.csv").write_text("the baseline\n")
    status, rows = parity_run(tmp_path, "writes_files", "--timeout", "5")
    assert status == 0 and {k: judged(r) for k, r in rows.items()} == {k: judged(r) for k, r in clean.items()}
    assert (tmp_path / "reports" / "baseline.csv").read_text() == "the baseline\n"
    assert not (tmp_path / "engine_was_here.txt").exists()
    assert not (ROOT / "engine_was_here.txt").exists()


def test_a_worker_keeps_only_the_environment_it_needs(tmp_path, monkeypatch):
    # exp gives the count of what it should not see: a secret in the
    # environment, the harness's working directory, a directory not its own.
    engine = reporting_engine(tmp_path / "environment.py",
                              "sum(1 for k in os.environ if k.startswith('GRADPARITY_SECRET')) "
                              f"+ (os.getcwd() == {str(tmp_path)!r}) + ('parity-engine-' not in os.getcwd())")
    monkeypatch.setenv("GRADPARITY_SECRET_TOKEN", "hunter2")
    monkeypatch.chdir(tmp_path)
    assert reported(engine) == 0.0


def test_the_network_is_cut_off_where_the_system_allows(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    # exp gives 1 when the engine reaches the test's socket, 0 when it cannot
    engine = reporting_engine(tmp_path / "networked.py", "def reach():", "    try:",
                              f"        socket.create_connection(('127.0.0.1', {port}), timeout=2).close()",
                              "        return 1.0", "    except OSError:", "        return 0.0", "reach()")
    try:
        cut = load_engine(engine)
        if cut.network != "isolated":
            pytest.skip(f"this system gives the worker no network namespace: {cut.network}")
        assert cut.run(REPORTING_CASE).values[0] == 0.0
        cut.close()
        assert reported(engine, limits=Limits(network=True)) == 1.0  # the same engine reaches it when allowed
    finally:
        listener.close()


def _nobody_can_run_the_worker():
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (the harness runs the worker as another user only as root)"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no user 'nobody' here"
    try:
        probe = subprocess.run([sys.executable, "-c", f"open({str(HOSTILE / 'hostile_base.py')!r}); import parity"],
                               user="nobody", group=pwd.getpwnam("nobody").pw_gid, extra_groups=[], cwd="/",
                               capture_output=True, env={"PYTHONPATH": str(ROOT)})
    except OSError as exc:
        return f"user 'nobody' cannot run this Python ({sys.executable}: {exc.strerror})"
    if probe.returncode != 0:
        return f"user 'nobody' cannot read this checkout or its Python: {probe.stderr.decode()[-200:]}"
    return None


@pytest.fixture
def shared_folder():
    """A folder every user can read (pytest's tmp_path is its owner's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="parity-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_the_worker_runs_as_another_user_when_asked(shared_folder):
    unable = _nobody_can_run_the_worker()
    if unable:
        pytest.skip(unable)
    engine = reporting_engine(shared_folder / "whoami.py", "os.geteuid()")
    (shared_folder / "whoami.py").chmod(0o644)
    assert reported(engine) == 0.0  # root, as the harness
    assert reported(engine, limits=Limits(user="nobody")) == float(pwd.getpwnam("nobody").pw_uid)


def test_an_engine_file_the_worker_cannot_read_is_a_spec_error(shared_folder):
    limits = Limits()
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root reads every file: read it as nobody
        unable = _nobody_can_run_the_worker()
        if unable:
            pytest.skip(unable)
        limits = Limits(user="nobody")
    engine = shared_folder / "secret.py"
    engine.write_text("class Value: pass\n")
    engine.chmod(0)
    with pytest.raises(EngineSpecError, match="cannot read engine file .*secret.py: Permission denied"):
        load_engine(f"{engine}:Value", limits=limits)


def test_a_sandbox_user_who_cannot_run_python_is_a_usage_error(tmp_path, monkeypatch):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root (the harness runs the worker as another user only as root)")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # nobody can run what is not there
    with pytest.raises(EngineSpecError, match="--sandbox-user nobody: cannot start the engine's worker"):
        load_engine(f"{HOSTILE / 'hostile_base.py'}:Value", limits=Limits(user="nobody"))


def test_workers_2_gives_the_rows_of_workers_1_with_isolated_engines(tmp_path):
    # hostile_base.py sums in a fixed order (tests/engines/micrograd.py, whose
    # children are a set, may round differently from one process to the next)
    options = ["--families", "expr,accumulation,edges", "--cases-per-family", "60", "--max-nodes", "20", "--quiet",
               "--ops", "add,mul,neg,sub,tanh", "--engine", f"{HOSTILE / 'hostile_base.py'}:Value"]
    rows = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.csv"
        assert cli.main(["run", "--workers", workers, "--out", str(out), *options]) in (0, 1)
        with open(out, newline="") as file:
            rows.append([{k: v for k, v in row.items() if k not in ("engine_seconds", "torch_seconds")}
                         for row in csv.DictReader(file)])
    assert rows[0] == rows[1] and len(rows[0]) == 180


def _worker_pids(parent=None):
    """The engine workers running (those of ``parent`` only, if given: other
    tests and other checkouts on the machine start workers too)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"parity.sandbox.worker" in (entry / "cmdline").read_bytes() and (
                        parent is None or f"\nPPid:\t{parent}\n" in (entry / "status").read_text()):
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the parent-death signal is Linux's")
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_stopping_the_harness_stops_its_engine_workers_and_resume_goes_on(tmp_path, how):
    out = tmp_path / "run.csv"
    # Enough that the run is still going when its first rows are read: the
    # engine gets many small cases a request, and 1,500 were once all done
    # by then.
    cases = 6000
    argv = [sys.executable, "-m", "parity.cli", "run", "--families", "expr", "--ops", "add,mul,neg,sub,tanh",
            "--cases-per-family", str(cases), "--max-nodes", "6", "--quiet", "--out", str(out),
            "--engine", f"{HOSTILE / 'hostile_base.py'}:Value"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = _worker_pids()
    process = start_in_its_own_group(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not partial_path(out).exists()
                                           or partial_path(out).read_text().count("\n") < 5):
        time.sleep(0.05)
    mine = _worker_pids(parent=process.pid) - before
    assert mine, "no engine worker was running"
    os.killpg(process.pid, getattr(signal, how))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == (130 if how == "SIGINT" else -signal.SIGKILL), stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and mine & _worker_pids():
        time.sleep(0.05)
    assert not mine & _worker_pids(), "an engine worker outlived the harness"
    if how == "SIGKILL":
        return
    kept = sum(len(chunk) for chunk in iter_report(partial_path(out)))
    assert 4 <= kept < cases
    resumed = subprocess.run(argv + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"ran {cases - kept} cases" in resumed.stdout
    assert sum(len(chunk) for chunk in iter_report(out)) == cases


def test_ctrl_c_in_an_engine_in_process_stops_the_run_instead_of_becoming_an_error():
    # Regression: the runner, which turns SystemExit into an error, once
    # turned Ctrl-C during one of our engine's cases into an `error` row.
    from parity.sandbox.engine_runner import EngineRunner

    class Interrupted(engine.Value):
        def tanh(self):
            raise KeyboardInterrupt

    runner = EngineRunner(Interrupted, "test")
    case = Case("t-0-0", "expr", 0, 0, Graph(1, (Node("tanh", (0,)),), (1,)), [1.0])
    with pytest.raises(KeyboardInterrupt):
        runner.run(case)
    assert runner.run(Case("t-0-1", "expr", 0, 1, Graph(1, (Node("exp", (0,)),), (1,)), [1.0]))[2] is None


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_run_leaves_no_engine_directory_behind(tmp_path, workers):
    # Regression: the judges of --workers 2 ended without closing their
    # engines, whose temporary directories stayed.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run([sys.executable, "-m", "parity.cli", "run", "--workers", workers, "--out",
                           str(tmp_path / "x.csv"), "--engine", f"{HOSTILE / 'hostile_base.py'}:Value", *SMALL],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(scratch.iterdir()) == []


def test_the_worker_imports_nothing_of_the_judge(tmp_path):
    # exp gives the count of the judge's modules loaded in its process
    engine = reporting_engine(tmp_path / "modules.py", "sum(name in sys.modules for name in (\n"
                              "    'torch', 'mpmath', 'numpy', 'pandas', 'parity.ops', 'parity.compare', 'parity.report',\n"
                              "    'parity.backends.oracle', 'parity.backends.torch', 'parity.runner', 'parity.cases'))")
    assert reported(engine) == 0.0


def test_every_op_row_takes_its_engine_call_from_the_worker_s_table():
    from parity import functions  # noqa: F401  (registers the fn_* rows)
    from parity.ops import OPS
    from parity.sandbox.engine_ops import ENGINE_OPS

    assert set(ENGINE_OPS) == set(OPS)
    assert all(OPS[name].engine is ENGINE_OPS[name] for name in OPS)
