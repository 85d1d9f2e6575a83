"""Diagnosis: each planted bug gives the findings that name it, and nothing
else; the unmutated engine gives none; a lecture engine's findings are
edge, multi_pass and limit ones, which `--expect lecture` lets pass.

The planted bugs are tests/test_injected_bugs.py's: every op row's code
path off by a relative 1e-9, forward or one operand's backward (ROWS says
which op rows run a path: those are the ops the findings must name), and
the text substitutions in a copy of the engine (machinery, formulas, edges).
The judge's reference is torch where it is installed, else the oracle's
exact answer (backends/reference.py): the findings must be the same.
"""
import json
import math
from pathlib import Path

import pytest

from parity import cli
from parity.backends.engine import load_engine
from parity.backends.oracle import OracleBackend
from parity.backends.reference import default_reference, make_reference
from parity.compare import Tolerances
from parity.diagnosis import Diagnosis, Finding, attribute, bad_rows, built_from, probe_findings
from parity.probes import probe_cases
from parity.report_files import sidecar_path
from parity.runner import run_cases
from test_injected_bugs import MUTANTS, OP_BUGS, ROWS, make_mutant, mutant_root  # noqa: F401

PROBES = probe_cases()
_ORACLE = OracleBackend()
JUDGE = (make_reference(default_reference(), _ORACLE), _ORACLE, Tolerances())


def findings_of(engine_backend):
    return probe_findings(list(run_cases(PROBES, engine_backend, *JUDGE)), PROBES)


def test_the_unmutated_engine_has_no_finding():
    assert findings_of(load_engine("engine")) == []


def rows_running(path):
    return {row for row, paths in ROWS.items() if path in paths}


# A forward and a backward bug of a unary path, both operands of a binary
# one, a path that op rows share (x + c, c + x), a Function's: the rest run
# in the slow tests.
SAMPLE = ("forward-tanh", "backward-tanh", "backward-mul-a", "backward-mul-b", "forward-add_const",
          "backward-Square", "backward-pow-b")


@pytest.mark.parametrize("bug", [pytest.param(bug, id=bug.name, marks=() if bug.name in SAMPLE else pytest.mark.slow)
                                 for bug in OP_BUGS if bug.path != "linear"])  # linear: no op row (mlp only)
def test_a_planted_op_bug_gives_a_wrong_finding_on_the_op_rows_that_run_it(bug, mutant_root):  # noqa: F811
    with bug.engine(mutant_root) as engine_backend:
        findings = findings_of(engine_backend)
    # The op rows that run the path and nothing else, and no more than those
    # that run it (a Function's backward may not reach the planted operand);
    # of them, a row that may be built from another one found (c + x from
    # x + c: OPS' built_from) is explained by that one.
    alone = {row for row, paths in ROWS.items() if paths == (bug.path,)}
    found = {f.op for f in findings}
    assert {row for row in alone if not built_from(row) & found} <= found <= rows_running(bug.path), \
        [f.line() for f in findings]
    assert {f.kind for f in findings} == {"wrong"}
    part = "value" if bug.operand is None else "gradient"
    assert all(f.part.startswith(part) for f in findings), [f.part for f in findings]


@pytest.mark.parametrize("engine, ops", [
    # =, not +=, in mul's backward: neg, sub and div fail their reuse probes
    # too, built on mul (regression: it was one `backward` finding)
    ("class/dave/micrograd.py", {"mul"}),
    # = in the backward loop of every op: the machinery (add's and mul's own)
    ("overwriting.py:Value", {"backward"}),
])
def test_a_reuse_bug_is_blamed_on_the_op_it_comes_from(engine, ops):
    backend = load_engine(str(Path(__file__).parent / "engines" / engine))
    try:
        wrong = {f.op for f in findings_of(backend) if f.kind == "wrong"}
    finally:
        backend.close()
    assert wrong == ops


# mutant -> (the ops its findings name, their kind)
EXPECTED = {
    "accumulation-grad-assigned": ({"backward"}, "multi_pass"),
    "accumulation-add-backward-assigns": ({"add"}, "wrong"),
    "accumulation-consumers-overwrite": ({"backward"}, "wrong"),
    "topological-order-depth-first-preorder": ({"backward"}, "wrong"),
    "topological-order-breadth-first": ({"backward"}, "wrong"),
    "zero_grad-pass-gradients-kept": ({"backward"}, "multi_pass"),
    "zero_grad-ignored": ({"backward"}, "multi_pass"),
    "formula-tanh-derivative-1-minus-y": ({"tanh"}, "wrong"),
    "formula-pow-derivative-e-x-to-the-e": ({"pow_const"}, "wrong"),
    "formula-rsub-computes-x-minus-c": ({"rsub"}, "wrong"),
    # relu's derivative tested on its output, 0 for every negative input: wrong there, not at 0 only
    "edge-relu-derivative-1-at-0": ({"relu"}, "wrong"),
    # pow's exponent gradient takes the log of the base: it raises at 0 too.
    "edge-log-at-0-raises": ({"log", "pow", "rpow"}, "edge"),
}


@pytest.mark.parametrize("mutant", [m for m in MUTANTS if m.name in EXPECTED], ids=lambda m: m.name)
def test_a_planted_machinery_formula_or_edge_bug_gives_exactly_its_findings(mutant, mutant_root):  # noqa: F811
    ops, kind = EXPECTED[mutant.name]
    with mutant.engine(mutant_root) as engine_backend:
        findings = findings_of(engine_backend)
    assert {f.op for f in findings} == ops, [f.line() for f in findings]
    assert {f.kind for f in findings} == {kind}
    for finding in findings:  # each shows on a handful of nodes, and replays
        assert len(finding.minimal_case["graph"]["nodes"]) <= 6 or finding.kind == "limit"
        assert finding.replay.startswith(f"parity replay {finding.example}")


def test_two_planted_bugs_give_their_two_findings(mutant_root):  # noqa: F811
    tanh, rsub = (next(m for m in MUTANTS if m.name == name)
                  for name in ("formula-tanh-derivative-1-minus-y", "formula-rsub-computes-x-minus-c"))
    make_mutant(mutant_root, "gradparity_mutant_two_bugs", tanh.file, tanh.old, tanh.new).close()
    second = mutant_root / "gradparity_mutant_two_bugs" / rsub.file
    second.write_text(second.read_text().replace(rsub.old, rsub.new))
    findings = findings_of(load_engine("gradparity_mutant_two_bugs:Value"))
    assert {(f.op, f.kind) for f in findings} == {("tanh", "wrong"), ("rsub", "wrong")}


def row(case_id, ops, verdict="fail", depth=2, n_nodes=2, detail="grad of leaf v0: ..."):
    return {"case_id": case_id, "ops": ops, "verdict": verdict, "depth": depth, "n_nodes": n_nodes,
            "detail": detail}


def finding(op, kind):
    return Finding(op=op, part="", kind=kind, example="probe-0-0", detail="", minimal_case={})


def test_a_bad_case_is_explained_by_the_first_finding_that_can_explain_it():
    findings = [finding("tanh", "wrong"), finding("backward", "multi_pass"), finding("backward", "limit"),
                finding("div", "edge")]
    rows = [row("expr-0-1", "mul;tanh"), row("accumulation-0-2", "mul", n_nodes=1),
            row("expr-0-3", "add", verdict="error", depth=500, n_nodes=500, detail="RecursionError: ..."),
            row("edges-0-4", "div", verdict="error", detail="ZeroDivisionError"),
            row("expr-0-5", "div;tanh"), row("expr-0-6", "mul")]
    unexplained = attribute(findings, rows, lambda case_id: 2 if case_id.startswith("accumulation") else 1)
    assert [(f.op, f.kind, f.cases) for f in findings] == [
        ("tanh", "wrong", 2), ("backward", "multi_pass", 1), ("backward", "limit", 1), ("div", "edge", 1)]
    assert [r["case_id"] for r in unexplained] == ["expr-0-6"]
    assert findings[0].run_example == "expr-0-1"


def test_the_lecture_profile_fails_only_on_wrong_findings():
    edge_only = Diagnosis([finding("div", "edge"), finding("backward", "multi_pass")], bad_cases=10)
    assert edge_only.fails_under("all") and not edge_only.fails_under("lecture")
    assert Diagnosis([finding("tanh", "wrong")], bad_cases=1).fails_under("lecture")


def test_a_lecture_engine_passes_the_lecture_profile_and_its_findings_reach_the_sidecar(tmp_path, capsys):
    out = tmp_path / "lecture.csv"
    options = ["run", "--engine", "tests/engines/micrograd.py:Value", "--ops", "supported", "--families",
               "accumulation,edges,expr", "--cases-per-family", "300", "--out", str(out), "--quiet"]
    assert cli.main(options + ["--expect", "lecture"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("findings (")
    diagnosis = json.loads(sidecar_path(out).read_text())["diagnosis"]
    kinds = {(f["op"], f["kind"]) for f in diagnosis}
    assert ("backward", "multi_pass") in kinds and ("div", "edge") in kinds
    assert {kind for _, kind in kinds} <= {"edge", "multi_pass", "limit"}
    verdicts = json.loads(sidecar_path(out).read_text())["verdicts"]
    assert sum(f["cases"] for f in diagnosis) == verdicts.get("fail", 0) + verdicts.get("error", 0)
    assert cli.main(["diagnose", str(out)]) == 1
    assert cli.main(["diagnose", str(out), "--expect", "lecture"]) == 0
    # The run's own diagnosis reads its just-checked report's bad rows alone: the same rows.
    rows = bad_rows(out)
    assert rows == bad_rows(out, checked=True) and {r["verdict"] for r in rows} == {"fail", "error"}
    page = tmp_path / "lecture.html"
    cli.main(["report", str(out), "--html", str(page)])
    html = page.read_text()
    assert html.index("<h2>Findings</h2>") < html.index("<h2>Verdicts per family</h2>")
    assert "repeated backward() on one graph" in html


def test_pypi_micrograd_has_no_wrong_finding_and_passes_the_lecture_profile(tmp_path, capsys):
    pytest.importorskip("micrograd")
    out = tmp_path / "micrograd.csv"
    status = cli.main(["run", "--engine", "micrograd", "--ops", "supported", "--cases-per-family", "200", "--expect", "lecture",
                       "--out", str(out), "--quiet"])
    findings = json.loads(sidecar_path(out).read_text())["diagnosis"]
    kinds = {(f["op"], f["kind"]) for f in findings}
    assert status == 0, capsys.readouterr().out
    assert not [f for f in findings if f["kind"] == "wrong"]
    # its divisions raise at 0 (x * y**-1), its x**-1 overflows or goes complex,
    # a second backward() re-propagates, its recursive sort stops near 1,000
    assert {("div", "edge"), ("rdiv", "edge"), ("backward", "multi_pass"), ("backward", "limit")} <= kinds


LEARNER_CASE = {"case_id": "learner-0-0", "family": "expr", "seed": 0, "index": 0,
                "graph": {"n_leaves": 1, "nodes": [{"op": "rsub", "args": [0], "const": 1.0},
                                                   {"op": "add", "args": [1, 1]}, {"op": "tanh", "args": [2]}],
                          "outputs": [3]},
                "leaves": [0.25], "passes": 1, "zero_grad_between": False, "structure": "", "spec": {}, "name": ""}


@pytest.mark.parametrize("mutant_name, wrong_line, made_by", [
    ("formula-tanh-derivative-1-minus-y", "v2 = v1 + v1", "made it: v3 = tanh(v2)"),
    ("formula-rsub-computes-x-minus-c", "v1 = 1.0 - v0", None),
])
def test_replay_shows_every_node_and_marks_the_first_wrong_one(mutant_name, wrong_line, made_by, mutant_root,  # noqa: F811
                                                              capsys):
    mutant = next(m for m in MUTANTS if m.name == mutant_name)
    package = f"gradparity_replay_{mutant_name.replace('-', '_')}"  # the module's other tests made theirs
    make_mutant(mutant_root, package, mutant.file, mutant.old, mutant.new).close()
    assert cli.main(["replay", "--json", json.dumps(LEARNER_CASE), "--engine", f"{package}:Value"]) == 1
    out = capsys.readouterr().out
    marked = [line for line in out.splitlines() if "<- first wrong" in line]
    assert len(marked) == 1 and marked[0].startswith(wrong_line), out
    if made_by:
        assert made_by in out
    else:
        assert f"first wrong value: {wrong_line}" in out


def test_compare_groups_the_regressions_by_the_current_run_s_findings(tmp_path, capsys):
    hostile = "tests/engines/hostile"
    options = ["--ops", "add,mul,neg,sub,tanh", "--families", "expr", "--cases-per-family", "40", "--max-nodes", "8", "--quiet"]
    for name in ("hostile_base", "wrong_tanh"):
        cli.main(["run", "--engine", f"{hostile}/{name}.py:Value", "--out", str(tmp_path / f"{name}.csv"), *options])
    capsys.readouterr()
    assert cli.main(["compare", str(tmp_path / "hostile_base.csv"), str(tmp_path / "wrong_tanh.csv")]) == 1
    lines = capsys.readouterr().out.splitlines()
    regressed = int(next(line for line in lines if line.startswith("regressed: ")).split(": ")[1])
    assert lines[1] == f"{regressed} regressed case(s), explained by:"
    assert lines[2].split()[:4] == [str(regressed), "wrong", "tanh:", "gradient"] and "(new)" in lines[2]


ROUNDS_DIFFERENTLY = "tests/engines/rounds_differently.py:Value"
PATH_SUM = "tests/engines/path_sum.py:Value"
STYLED_OPS = ("add", "sub", "mul", "div", "rdiv", "neg", "tanh", "mul_const", "add_const", "rsub", "exp")


@pytest.mark.parametrize("engine, seed, n, max_nodes", [
    # a / b as a * b**-1, a - b as a + (-1 * b), children in a set (any
    # order of summation): within a few ulps per op of torch, so every
    # rounding-level disagreement (0.9999999999999999 - 1 against 0) must be
    # ill_conditioned.
    (ROUNDS_DIFFERENTLY, 0, 4000, 60),
    pytest.param(ROUNDS_DIFFERENTLY, 1, 10_000, 60, marks=pytest.mark.slow),
    # Gradients summed path by path: where paths cancel (v - v downstream
    # of w - w) torch's gradient is exactly 0 and this engine's is ulps of
    # the paths' products.  (Exponential in shared subgraphs: small graphs.)
    (PATH_SUM, 0, 3000, 25),
    pytest.param(PATH_SUM, 1, 10_000, 40, marks=pytest.mark.slow),
])
def test_a_correct_engine_that_rounds_differently_gets_no_wrong_finding(engine, seed, n, max_nodes):
    # What fails is its edges - x**-1 at 0, exp past 709, a product that
    # overflows and a naive derivative that then gives 0 - and each failing
    # case must be explained by an edge finding.
    from parity.cases import build_cases
    from parity.diagnosis import diagnose
    from parity.plan import RunSpec

    engine_backend = load_engine(engine)
    cases = build_cases("expr", seed, n, {"ops": STYLED_OPS, "edge_rate": 0.0, "max_nodes": max_nodes})
    rows = list(run_cases(cases, engine_backend, *JUDGE))
    assert sum(row["verdict"] == "ill_conditioned" for row in rows) > 0  # it does round differently
    # Every fail is at an edge: some value of the graph overflows in torch's
    # own evaluation (none is a rounding-level disagreement).
    for case, row in zip(cases, rows):
        if row["verdict"] == "fail":
            assert not all(map(math.isfinite, JUDGE[0].trace(case)[0])), (row["case_id"], row["detail"])
    bad = [row for row in rows if row["verdict"] in ("fail", "error")]
    diagnosis = diagnose(bad, (engine_backend, *JUDGE), RunSpec(engine=engine))
    assert diagnosis.unexplained == 0 and not [f.line() for f in diagnosis.findings if f.kind == "wrong"]


def test_a_bug_no_single_op_shows_is_shrunk_to_its_two_ops_and_replays(tmp_path, capsys):
    out = tmp_path / "two.csv"
    engine = "tests/engines/hostile/tanh_then_mul.py:Value"
    cli.main(["run", "--engine", engine, "--ops", "add,mul,neg,sub,tanh", "--families", "expr", "--cases-per-family", "120",
              "--out", str(out), "--quiet"])
    capsys.readouterr()
    (finding,) = [f for f in json.loads(sidecar_path(out).read_text())["diagnosis"] if f["kind"] == "wrong"]
    assert finding["op"] == "mul+tanh" and finding["cases"] > 0
    nodes = finding["minimal_case"]["graph"]["nodes"]
    assert [node["op"] for node in nodes] == ["tanh", "mul"]
    assert cli.main(["replay", "--json", json.dumps(finding["minimal_case"]), "--engine", engine]) == 1
    assert "first wrong gradient" in capsys.readouterr().out


def test_two_bugs_no_single_op_shows_are_two_shrunk_findings_that_share_the_cases(tmp_path, capsys):
    out = tmp_path / "two_pairs.csv"
    engine = "tests/engines/hostile/two_pair_bugs.py:Value"
    cli.main(["run", "--engine", engine, "--ops", "add,mul,neg,sub,tanh", "--families", "expr", "--cases-per-family", "300",
              "--max-nodes", "4", "--out", str(out), "--quiet"])
    capsys.readouterr()
    sidecar = json.loads(sidecar_path(out).read_text())
    wrong = {f["op"]: f for f in sidecar["diagnosis"] if f["kind"] == "wrong"}
    assert set(wrong) == {"add+sub", "mul+tanh"}
    # Each explains the bad cases that contain its ops, and together all of them.
    assert sum(f["cases"] for f in wrong.values()) == sidecar["verdicts"]["fail"]
    assert all(len(f["minimal_case"]["graph"]["nodes"]) == 2 for f in wrong.values())


def test_the_probes_of_an_op_at_its_edge_points_are_judged_as_one_group():
    # They have no structure key but one graph: one engine request and one
    # torch batch for all of them, not one each (the diagnosis's thousand).
    from parity.runner import _groups

    probes = probe_cases(["exp", "log"])
    groups = list(_groups(probes))
    assert [case for group in groups for case in group] == probes
    assert all(len({case.graph for case in group}) == 1 for group in groups)
    for op in ("exp", "log"):
        edges = {case.case_id for case in probes if case.spec["op"] == op and case.spec["probe"] == "edge"}
        assert any(edges <= {case.case_id for case in group} for group in groups)


def test_judging_pauses_the_cycle_collector_and_restores_it():
    import gc

    from parity.runner import _collector_paused

    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), _collector_paused():
        assert not gc.isenabled()
        1 / 0
    assert gc.isenabled()
    gc.disable()
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()  # a caller's choice stands
    finally:
        gc.enable()


def test_shrinking_is_deterministic_and_keeps_only_what_the_failure_needs():
    from parity.cases import build_cases
    from parity.shrink import shrink

    def tanh_feeds_mul(case):
        made_by = {case.graph.n_leaves + i: node.op for i, node in enumerate(case.graph.nodes)}
        return any(node.op == "mul" and made_by.get(node.args[1]) == "tanh" for node in case.graph.nodes)

    cases = [c for c in build_cases("expr", 3, 400, {"ops": ("add", "mul", "tanh", "neg"), "max_nodes": 40})
             if tanh_feeds_mul(c) and c.graph.n_nodes > 10]
    case = cases[0]
    values = JUDGE[0].trace(case)[0]
    small = shrink(case, tanh_feeds_mul, values)
    assert [node.op for node in small.graph.nodes] == ["tanh", "mul"]
    assert shrink(case, tanh_feeds_mul, values).to_json() == small.to_json()


def test_one_wrong_op_lights_up_its_own_row_of_the_per_op_table_only(tmp_path, capsys):
    # Counted over every case containing an op, a wrong tanh gave a correct
    # add a p99 error of 9e+307; counted over the cases of one op alone, only
    # tanh's row shows it.
    from parity.report import Summary, read_report

    out = tmp_path / "wrong_tanh.csv"
    cli.main(["run", "--engine", "tests/engines/hostile/wrong_tanh.py:Value", "--ops", "add,mul,neg,sub,tanh",
              "--families", "edges,accumulation,expr", "--cases-per-family", "60", "--out", str(out), "--quiet"])
    assert "per op (cases of that op alone)" in capsys.readouterr().out
    table = Summary().add(read_report(out)).op_error_table()
    assert table.loc["tanh", "max"] > 1e-3
    assert (table.drop(index="tanh")["max"].fillna(0) == 0).all(), table


@pytest.mark.torch  # a float32 engine's cases are judged again against torch in float32
@pytest.mark.parametrize("engine, wrong", [("float32_values", []), ("float32_wrong_tanh", ["tanh: gradient"])])
def test_a_float32_engine_gets_one_precision_finding_not_a_wall_of_wrong_ops(tmp_path, capsys, engine, wrong):
    # Judged again against torch in float32, its cases agree to float32's
    # precision: one `precision` finding explains them; a bug beyond that
    # precision is still named.
    out = tmp_path / f"{engine}.csv"
    cli.main(["run", "--engine", f"tests/engines/{engine}.py:Value", "--ops", "add,mul,neg,sub,tanh",
              "--families", "expr,accumulation", "--cases-per-family", "100", "--out", str(out), "--quiet"])
    capsys.readouterr()
    findings = json.loads(sidecar_path(out).read_text())["diagnosis"]
    (precision,) = [f for f in findings if f["kind"] == "precision"]
    assert "float32" in precision["part"] and precision["cases"] > 0
    assert [f"{f['op']}: {f['part']}" for f in findings if f["kind"] == "wrong"] == wrong
