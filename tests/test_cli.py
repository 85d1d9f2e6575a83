"""`parity`'s commands and exit statuses: 0 ok, 1 a failing case (or a
regression), 2 bad usage or unreadable input."""
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from parity.backends.reference import resolve as resolve_reference
from parity.cli import main

ROOT = Path(__file__).resolve().parent.parent

# A micrograd-style engine with one planted bug: tanh's local derivative is
# 1 - t instead of 1 - t**2.  It has no sigmoid (unsupported, not a failure).
BUGGY_ENGINE = '''
import math


class Value:
    def __init__(self, data, prev=(), local=()):
        self.data, self.grad, self._prev, self._local = float(data), 0.0, prev, local

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __radd__, __rmul__ = __add__, __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t,))

    def backward(self):
        order, seen = [], set()

        def visit(value):
            if id(value) not in seen:
                seen.add(id(value))
                for child in value._prev:
                    visit(child)
                order.append(value)

        visit(self)
        self.grad = 1.0
        for value in reversed(order):
            for child, local in zip(value._prev, value._local):
                child.grad += local * value.grad
'''


def run_main(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_version_and_help_name_the_exit_statuses():
    done = subprocess.run([sys.executable, "-m", "parity.cli", "--version"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0 and re.fullmatch(r"parity \(gradparity\) \d+\.\d+\.\d+\n", done.stdout)
    done = subprocess.run([sys.executable, "-m", "parity.cli", "--help"], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0
    assert "130  interrupted" in done.stdout and "2    bad usage" in done.stdout
    for command in ("run", "compare", "merge", "report", "replay"):
        assert command in done.stdout


@pytest.mark.parametrize("argv, message", [
    (["run", "--families", "expr,nope"], "unknown families"),
    (["run", "--shard", "3/2"], "shard 3/2"),
    (["run", "--cases", "0"], "at least one case per family"),
    (["run", "--edge-rate", "2"], "edge_rate"),
    (["compare", "missing.csv", "missing.csv"], "missing.csv: no such file"),
    (["report", "missing.csv"], "missing.csv: no such file"),
    (["merge", "missing.csv", "--out", "merged.csv"], "missing.json: no such file"),
    (["replay", "--json", "{not json"], "Expecting property name"),
    (["replay", "--json", "missing.json"], "cannot read missing.json"),
])
def test_bad_usage_exits_2_with_a_one_line_message(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main(capsys, *argv)
    assert status == 2
    assert err.startswith("parity: error: ") and message in err and err.count("\n") == 1


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["run", "--workers", "0"])
    assert raised.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_an_engine_spec_that_loads_nothing_exits_2(capsys):
    status, _, err = run_main(capsys, "run", "--engine", "no_such_module_here:Value")
    assert status == 2 and err.startswith("parity: error: ") and "no_such_module_here" in err


def test_a_passing_run_exits_0_with_a_summary(capsys, tmp_path):
    out = tmp_path / "run.csv"
    status, stdout, stderr = run_main(capsys, "run", "--families", "accumulation,edges", "--cases-per-family", "12",
                                      "--out", out)
    assert status == 0
    # off a terminal: the plan, then a line every 10 s (none in so short a run), no bar
    assert stderr.startswith("parity: 24 cases planned (accumulation 12, edges 12 in the whole run); ETA about")
    assert stderr.count("\n") == 1
    assert "verdicts per family:" in stdout and "no case failed" in stdout
    assert re.search(r"ran 24 cases in [\d.]+ s: [\d.]+ cases/s", stdout)
    assert f"report: {out}" in stdout and out.exists()


def test_on_a_terminal_a_run_shows_a_progress_bar(tmp_path):
    pty = pytest.importorskip("pty")
    terminal, stderr = pty.openpty()
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    process = subprocess.Popen([sys.executable, "-m", "parity.cli", "run", "--families", "accumulation",
                                "--cases-per-family", "7", "--out", tmp_path / "run.csv"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=stderr)
    os.close(stderr)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the terminal's other end closed: the run is over
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=120) == 0
    assert re.search(rb"100%\|.*\| 7/7 ", shown)


def test_without_out_a_run_writes_a_timestamped_report_and_latest(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_main(capsys, "run", "--families", "accumulation", "--cases-per-family", "3")[0] == 0
    [report] = (tmp_path / "reports").glob("parity-*.csv")
    assert re.fullmatch(r"parity-\d{8}-\d{6}\.csv", report.name)
    assert (tmp_path / "reports" / "latest.csv").read_text() == report.read_text()
    assert json.loads((tmp_path / "reports" / "latest.json").read_text())["complete"]


def test_a_buggy_engine_exits_1_and_its_failures_replay(capsys, tmp_path):
    engine = tmp_path / "buggy.py"
    engine.write_text(BUGGY_ENGINE)
    spec = f"{engine}:Value"
    status, stdout, _ = run_main(capsys, "run", "--engine", spec, "--families", "accumulation",
                                 "--cases-per-family", "60", "--out", tmp_path / "run.csv")
    assert status == 1
    replays = re.findall(r"^  (parity replay accumulation-0-\d+ --engine \S+)(?: --reference oracle)?    # fail: ",
                         stdout, re.M)
    assert replays and all(spec in command for command in replays)

    case_id = replays[0].split()[2]
    status, stdout, _ = run_main(capsys, "replay", case_id, "--engine", spec)
    assert status == 1
    assert re.search(r"^v\d+ = ", stdout, re.M)  # the graph
    reference = resolve_reference("auto")
    # the oracle settles it (against torch: a column of its own; as the reference, its exact answer)
    assert re.search(r"^\s+engine\s+torch\s+oracle$" if reference == "torch" else r"^\s+engine\s+oracle$", stdout,
                     re.M)
    assert re.search(r"^verdict: fail: grad of leaf v\d", stdout, re.M)


def test_replay_takes_a_case_as_json(capsys, tmp_path):
    from parity.cases import case_from_id

    case = case_from_id("accumulation-0-0")
    status, stdout, _ = run_main(capsys, "replay", "--json", case.dumps())
    assert status == 0
    assert "case accumulation-0-0 (accumulation, a + a)" in stdout
    assert re.search(r"^grad v0\s+2\.0\s+2\.0$", stdout, re.M) and "verdict: pass" in stdout
    path = tmp_path / "case.json"
    path.write_text(case.dumps())
    assert run_main(capsys, "replay", "--json", path)[0] == 0


def test_compare_exits_1_on_a_regression_and_2_on_a_wrong_schema(capsys, tmp_path):
    from test_report import frame, row, write

    baseline = write(tmp_path, frame(row("expr-0-0"), row("expr-0-1")), "baseline.csv")
    same = write(tmp_path, frame(row("expr-0-0"), row("expr-0-1")), "same.csv")
    worse = write(tmp_path, frame(row("expr-0-0"), row("expr-0-1", "fail", detail="grad of leaf v0")), "worse.csv")
    status, stdout, _ = run_main(capsys, "compare", baseline, same)
    assert status == 0 and "regressed: 0" in stdout
    status, stdout, _ = run_main(capsys, "compare", baseline, worse)
    assert status == 1 and "regressed: 1\n  expr-0-1: pass -> fail: grad of leaf v0" in stdout
    broken = tmp_path / "broken.csv"
    broken.write_text(worse.read_text().replace("verdict", "outcome"))
    status, _, err = run_main(capsys, "compare", baseline, broken)
    assert status == 2 and "missing column(s) verdict" in err


def test_report_prints_the_summary_and_exits_by_the_verdicts(capsys, tmp_path):
    from test_report import frame, row, write

    path = write(tmp_path, frame(row("expr-0-0"), row("expr-0-1", "error", detail="RecursionError")))
    status, stdout, _ = run_main(capsys, "report", path)
    assert status == 1 and "1 case(s) failed" in stdout and "# error: RecursionError" in stdout


def test_draws_per_graph_runs_other_cases_that_replay_and_rerun_with_it(capsys, tmp_path):
    from parity.report import read_report

    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    assert run_main(capsys, "run", "--families", "expr", "--cases-per-family", "40", "--max-nodes", "12",
                    "--draws-per-graph", "20", "--out", first)[0] == 0
    sidecar = json.loads(first.with_suffix(".json").read_text())
    assert sidecar["args"]["draws_per_graph"] == 20
    report = read_report(first)
    assert report["replay"][21] == "parity replay expr-0-21 --engine engine --max-nodes 12 --draws-per-graph 20" + (
        " --reference oracle" if resolve_reference("auto") == "oracle" else "")
    status, stdout, _ = run_main(capsys, *report["replay"][21].split()[1:])
    assert status == 0 and "case expr-0-21 (expr" in stdout
    assert run_main(capsys, "run", "--same-as", first, "--out", second)[0] == 0
    assert read_report(second)["n_nodes"].tolist() == report["n_nodes"].tolist()
    status, _, err = run_main(capsys, "run", "--same-as", first, "--draws-per-graph", "4", "--out", tmp_path / "x.csv")
    assert status == 2 and "drop --draws-per-graph" in err
    with pytest.raises(SystemExit) as exit_:
        run_main(capsys, "run", "--draws-per-graph", "0", "--out", tmp_path / "y.csv")
    assert exit_.value.code == 2 and "--draws-per-graph: must be at least 1" in capsys.readouterr().err


def test_shards_run_and_merge_from_the_command_line(capsys, tmp_path):
    shards = [tmp_path / f"shard{k}.csv" for k in (1, 2)]
    for k, shard in enumerate(shards, start=1):
        assert run_main(capsys, "run", "--families", "accumulation", "--cases-per-family", "6", "--shard", f"{k}/2",
                        "--out", shard)[0] == 0
    merged = tmp_path / "merged.csv"
    status, stdout, _ = run_main(capsys, "merge", *shards, "--out", merged)
    assert status == 0 and f"merged 2 shards, 6 cases: {merged}" in stdout
    status, _, err = run_main(capsys, "merge", shards[0], "--out", merged)
    assert status == 2 and "missing shard 2/2" in err


def test_same_as_reruns_the_cases_of_a_report(capsys, tmp_path):
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    assert run_main(capsys, "run", "--families", "function", "--cases-per-family", "5", "--seed", "3", "--out", first)[0] == 0
    assert run_main(capsys, "run", "--same-as", first, "--out", second)[0] == 0
    from parity.report import read_report
    assert list(read_report(second)["case_id"]) == [f"function-3-{i}" for i in range(5)]
    status, _, err = run_main(capsys, "run", "--same-as", first, "--seed", "4", "--out", tmp_path / "x.csv")
    assert status == 2 and "drop --seed" in err
