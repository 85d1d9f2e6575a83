"""The higher_order family: second and third derivatives, judged by torch
and the oracle's differenced exact gradient; planted higher-order bugs named
by the diagnosis; engines without higher derivatives get `unsupported`."""
import json
from pathlib import Path

import pytest

from parity.cases import build_cases, case_from_id
from parity.higher_order import derivative_names, n_quantities, named_cases

pytest.importorskip("torch")

from parity.backends.oracle import OracleBackend  # noqa: E402
from parity.backends.torch import TorchBackend  # noqa: E402
from parity.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VALUE_GRADS = ROOT / "tests" / "engines" / "value_grads.py"
VALUE_GRADS_OPS = "add,sub,mul,neg,tanh,exp,pow_const,mul_const,add_const"


def test_cases_are_deterministic_and_rebuild_from_their_ids():
    cases = build_cases("higher_order", 0, len(named_cases()) + 40)
    again = build_cases("higher_order", 0, len(cases))
    assert [c.to_json() for c in cases] == [c.to_json() for c in again]
    for case in cases[::7]:
        assert case_from_id(case.case_id).to_json() == case.to_json()
    kinds = {case.name for case in cases[len(named_cases()):]}
    assert {"hessian", "hvp", "third"} <= kinds and any("MLP" in k for k in kinds)


def test_every_derivative_index_names_a_leaf_and_names_match_the_counts():
    for case in build_cases("higher_order", 3, len(named_cases()) + 80):
        n = case.graph.n_leaves
        assert len(case.leaves) == n
        for index in case.spec.get("derivatives", []):
            assert 2 <= len(index) <= 3 and all(0 <= i < n for i in index)
        assert len(derivative_names(case)) == n_quantities(case) - n


@pytest.mark.parametrize("index", range(len(named_cases()) + 24))
def test_the_oracle_agrees_with_torch_on_the_higher_derivatives(index):
    """Differencing the exact gradient at 256 bits gives torch's second and
    third derivatives to within the judge's tolerance (1e-12 relative), or
    within a few times torch's own rounding where they cancel."""
    case = case_from_id(f"higher_order-0-{index}")
    torch_result, exact = TorchBackend().run(case), OracleBackend().run(case)
    assert torch_result.ok and exact.ok, (torch_result.error, exact.error)
    for t, x in zip(torch_result.grads, exact.grads):
        assert abs(t - x) <= 1e-9 * max(abs(x), 1e-6), (case.name, t, x)


def test_perturbation_confusion_is_one_and_a_named_case():
    case = next(c for c in build_cases("higher_order", 0, len(named_cases())) if "perturbation" in c.name)
    assert TorchBackend().run(case).grads[-1] == 1.0
    assert OracleBackend().run(case).grads[-1] == 1.0


def run(engine, tmp_path, cases=300, ops=VALUE_GRADS_OPS, family="higher_order"):
    out = tmp_path / "run.csv"
    status = main(["run", "--engine", f"{engine}:Value", "--families", family, "--cases", str(cases),
                   "--out", str(out), "--quiet", *(["--ops", ops] if ops else [])])
    return status, json.loads(out.with_suffix(".json").read_text())


def test_an_engine_whose_gradients_are_values_passes_with_no_fail(tmp_path):
    """tests/engines/value_grads.py: correct, formulas unlike torch's (its
    rounding differs), differentiated through backward(create_graph=True)."""
    import pandas as pd

    status, sidecar = run(VALUE_GRADS, tmp_path, 600)
    report = pd.read_csv(tmp_path / "run.csv")
    counts = report.verdict.value_counts()
    assert counts.get("fail", 0) == 0 and counts.get("torch_off", 0) == 0, report[report.verdict == "fail"].detail
    assert counts.get("pass", 0) > 300
    assert not [f for f in sidecar["diagnosis"] if f["kind"] == "wrong"]


@pytest.mark.parametrize("bug, op", [("tanh_data", "tanh"), ("mul_second", "mul")])
def test_a_planted_second_derivative_bug_is_one_finding_naming_its_op(tmp_path, bug, op):
    """A backward right at first order but not differentiable (tanh reads
    out.data), or building one contribution from a constant copy (mul):
    one `wrong` finding, that op's second derivatives; no other op wrong."""
    engine = tmp_path / f"{bug}.py"
    engine.write_text(VALUE_GRADS.read_text().replace("BUG = None", f"BUG = {bug!r}"))
    status, sidecar = run(engine, tmp_path)
    assert status == 1
    wrong = [f for f in sidecar["diagnosis"] if f["kind"] == "wrong"]
    assert [(f["op"], f["part"].split(" (")[0]) for f in wrong] == [(op, "second derivatives")]
    assert wrong[0]["cases"] > 50


def test_an_engine_without_higher_derivatives_is_unsupported_not_failed(tmp_path, capsys):
    out = tmp_path / "run.csv"
    status = main(["run", "--engine", str(ROOT / "tests" / "engines" / "micrograd.py") + ":Value", "--families",
                   "higher_order", "--cases", "60", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "no higher-order gradients" in err, err  # nothing judged: exit 2


# -- planted bugs in a copy of our engine ---------------------------------------------
OUR_BUGS = {
    # right at first order, not differentiable: the contribution to a is g * (b's number)
    "not_differentiable_mul": ("graph_backward.py", "    yield a, g * b\n    yield b, g * a\n",
                               "    yield a, g * b.data\n    yield b, g * a\n", "mul"),
    # tanh's double backward with the wrong sign: d2 tanh / dx2 = +2 y (1 - y^2)
    "wrong_second_derivative_tanh": ("backward_ops.py", "    yield y, gg * ((y * -2.0) * grad)\n",
                                     "    yield y, gg * ((y * 2.0) * grad)\n", "tanh"),
}


def planted_copy(tmp_path, name, file, old, new):
    """engine/ copied to package ``name`` under tmp_path, ``old`` -> ``new`` in ``file``."""
    import shutil

    package = tmp_path / name
    shutil.copytree(ROOT / "engine", package, ignore=shutil.ignore_patterns("__pycache__"))
    source = (package / file).read_text()
    assert source.count(old) == 1, f"{name}: the planted line must occur once in engine/{file}"
    (package / file).write_text(source.replace(old, new))
    return f"{package}/__init__.py"


@pytest.mark.parametrize("bug", sorted(OUR_BUGS))
def test_a_planted_higher_order_bug_in_our_engine_is_caught_and_named(tmp_path, bug):
    file, old, new, op = OUR_BUGS[bug]
    engine = planted_copy(tmp_path, f"planted_{bug}", file, old, new)
    status, sidecar = run(engine, tmp_path, 200, ops=None)
    assert status == 1
    wrong = [f for f in sidecar["diagnosis"] if f["kind"] == "wrong"]
    assert [(f["op"], f["part"].split(" (")[0]) for f in wrong] == [(op, "second derivatives")], wrong


def test_our_engine_passes_the_family_with_no_finding(tmp_path):
    status, sidecar = run(ROOT / "engine" / "__init__.py", tmp_path, 600, ops=None)
    assert status == 0 and not sidecar["diagnosis"], sidecar["diagnosis"]


def test_our_engine_passes_the_forward_family_with_no_finding(tmp_path):
    status, sidecar = run(ROOT / "engine" / "__init__.py", tmp_path, 800, ops=None, family="forward")
    assert status == 0 and not sidecar["diagnosis"], sidecar["diagnosis"]


def test_a_planted_tangent_rule_bug_is_one_finding_naming_its_op(tmp_path):
    """cos's tangent with the wrong sign (t * sin x): caught in forward mode,
    named as cos's tangent, while its reverse mode stays right."""
    engine = planted_copy(tmp_path, "planted_cos_tangent", "dual.py",
                          "lambda t, x, y: t * -_apply(SIN, (x,)))", "lambda t, x, y: t * _apply(SIN, (x,)))")
    status, sidecar = run(engine, tmp_path, 300, ops=None, family="forward")
    assert status == 1
    wrong = [f for f in sidecar["diagnosis"] if f["kind"] == "wrong"]
    assert [(f["op"], f["part"]) for f in wrong] == [("cos", "tangent (forward mode)")], wrong
    assert wrong[0]["cases"] > 10


def test_an_engine_without_jvp_is_unsupported_not_failed(tmp_path, capsys):
    status = main(["run", "--engine", f"{VALUE_GRADS}:Value", "--families", "forward", "--cases", "40",
                   "--out", str(tmp_path / "run.csv"), "--quiet"])
    assert status == 2 and "no forward mode" in capsys.readouterr().err


def test_perturbation_confusion_in_nested_jvps_is_caught_and_named(tmp_path):
    """Every jvp on one level: the inner jvp of x + y along y picks up the
    outer perturbation of x, and d/dx [x * d/dy (x + y)] comes out 2."""
    engine = planted_copy(tmp_path, "planted_one_level", "forward.py",
                          "_new_level = itertools.count(1).__next__", "_new_level = lambda: 1")
    status, sidecar = run(engine, tmp_path, 120, ops=None, family="forward")
    assert status == 1
    wrong = [f for f in sidecar["diagnosis"] if f["kind"] == "wrong"]
    assert [f["op"] for f in wrong] == ["jvp"] and wrong[0]["part"].startswith("perturbation confusion"), wrong
    assert "engine 1.4, torch 0.7" in wrong[0]["detail"]  # x * 2 where x * 1: the confused inner tangent


def test_regression_a_tangent_through_cos_of_a_huge_argument_is_not_a_false_fail():
    """forward-0-3609 (a 5,000-case soak): cos of 2.7e53 and its tangent
    -sin(2.7e53) dv; the oracle's step of 2**-40 relative spans many periods,
    so its differences disagreed, the quantity was 'unknown' and a 30 %
    difference between the engine's and torch's libm failed our engine.
    Not smooth now means an infinite spread: float64 cannot pin it."""
    from parity.backends.engine import load_engine
    from parity.runner import run_cases

    engine = load_engine("engine")
    try:
        (row,) = run_cases([case_from_id("forward-0-3609")], engine, TorchBackend(), OracleBackend())
    finally:
        engine.close()
    assert row["verdict"] == "ill_conditioned", row["detail"]


DUAL_NUMBER = ROOT / "tests" / "engines" / "dual_number.py"
DUAL_ADAPTER = ROOT / "tests" / "engines" / "dual_number_adapter.py"


def run_dual(engine, tmp_path):
    out = tmp_path / "run.csv"
    status = main(["run", "--engine", str(engine), "--adapter", str(DUAL_ADAPTER), "--families", "forward",
                   "--ops", "supported", "--cases", "200", "--out", str(out), "--quiet"])
    import pandas as pd
    return status, json.loads(out.with_suffix(".json").read_text()), pd.read_csv(out)


def test_a_dual_number_class_is_checked_through_its_tangent_attribute(tmp_path):
    """A CS107-style Dual (no backward) named by an adapter file's TANGENT:
    every case passes but the nested one - one tangent per number confuses
    the two perturbations, and that is its one finding."""
    status, sidecar, report = run_dual(DUAL_NUMBER, tmp_path)
    assert status == 1
    assert [(f["op"], f["part"].split(":")[0]) for f in sidecar["diagnosis"]] == [("jvp", "perturbation confusion")]
    bad = report[report.verdict.isin(["fail", "error"])]
    assert list(bad.case_id) == ["forward-0-0"] and (report.verdict == "pass").sum() > 100


def test_a_wrong_tangent_in_a_dual_number_class_names_its_op(tmp_path):
    engine = tmp_path / "dual_number.py"
    engine.write_text(DUAL_NUMBER.read_text().replace("Dual(math.sin(self.real), math.cos(self.real) * self.dual)",
                                                      "Dual(math.sin(self.real), -math.cos(self.real) * self.dual)"))
    status, sidecar, _ = run_dual(engine, tmp_path)
    wrong = {(f["op"], f["part"]) for f in sidecar["diagnosis"]}
    assert ("sin", "tangent (forward mode)") in wrong and {op for op, _ in wrong} == {"sin", "jvp"}, wrong


def test_regression_a_correct_engine_rounding_its_second_derivative_otherwise_is_not_failed():
    """higher_order-1-1519 on value_grads.py (its tanh'' formed otherwise than
    torch's): 1.4e-12 relative from the exact value where torch, by luck, is
    3e-14 off; the allowance was 16 times torch's error.  A higher
    derivative's allowance is at least 1e-10 relative (compare.py)."""
    from parity.backends.engine import load_engine
    from parity.plan import RunSpec
    from parity.runner import run_cases

    config = RunSpec(ops=tuple(VALUE_GRADS_OPS.split(","))).config()
    engine = load_engine(f"{VALUE_GRADS}:Value")
    try:
        (row,) = run_cases([case_from_id("higher_order-1-1519", config)], engine, TorchBackend(), OracleBackend())
    finally:
        engine.close()
    assert row["verdict"] in ("pass", "ill_conditioned"), row["detail"]


@pytest.mark.parametrize("case_id", ["higher_order-2-1271", "higher_order-2-1688"])
def test_regression_ulps_left_where_a_higher_derivative_cancels_to_zero_are_not_a_fail(case_id):
    """value_grads.py leaves 4e-16 and 1.8e-15 where the exact third
    derivative is 0 and torch's terms cancel exactly: the allowance was
    relative to 0.  Its floor is now 16 roundings of the case's largest
    derivative (compare.py)."""
    from parity.backends.engine import load_engine
    from parity.plan import RunSpec
    from parity.runner import run_cases

    config = RunSpec(ops=tuple(VALUE_GRADS_OPS.split(","))).config()
    engine = load_engine(f"{VALUE_GRADS}:Value")
    try:
        (row,) = run_cases([case_from_id(case_id, config)], engine, TorchBackend(), OracleBackend())
    finally:
        engine.close()
    assert row["verdict"] in ("pass", "ill_conditioned"), row["detail"]
