"""The reference a run compares the engine with (parity/backends/reference.py):
torch, or the oracle's exact answer rounded to float64, which needs no torch
(`parity run --reference torch|oracle|auto`)."""
import json
import math
from pathlib import Path

import pytest

from parity.backends import reference as reference_module
from parity.backends.oracle import OracleBackend
from parity.backends.reference import OracleReference, resolve
from parity.case import Case, Result
from parity.cases import build_cases
from parity.cli import main
from parity.compare import judge
from parity.graph import Graph, Node
from parity.plan import RunSpec
from parity.report import read_report
from parity.sidecar import read_sidecar

ROOT = Path(__file__).resolve().parent.parent
WRONG_TANH = ROOT / "tests" / "engines" / "hostile" / "wrong_tanh.py"
TANH = Case("t-0-0", "expr", 0, 0, Graph(1, (Node("tanh", (0,)),), (1,)), [0.5])


def test_auto_is_torch_where_it_imports_else_the_oracle(monkeypatch):
    monkeypatch.setattr(reference_module, "torch_importable", lambda: False)
    assert resolve("auto") == "oracle" and RunSpec().reference == "oracle"
    with pytest.raises(ValueError, match="PyTorch is not installed"):
        resolve("torch")
    monkeypatch.setattr(reference_module, "torch_importable", lambda: True)
    assert resolve("auto") == "torch" and RunSpec().reference == "torch"
    assert resolve("oracle") == "oracle"
    with pytest.raises(ValueError, match="unknown reference"):
        resolve("numpy")


def test_a_torch_judged_spec_writes_the_json_of_runs_before_the_reference():
    torch_spec = RunSpec(reference="torch")
    assert "reference" not in torch_spec.to_json()  # old sidecars: the same arguments, the same JSON
    assert RunSpec.from_json(torch_spec.to_json()).reference == "torch"
    oracle_spec = RunSpec(reference="oracle")
    assert oracle_spec.to_json()["reference"] == "oracle"
    assert RunSpec.from_json(oracle_spec.to_json()) == oracle_spec
    assert "--reference oracle" in oracle_spec.replay_command("expr-0-1")
    assert "--reference" not in torch_spec.replay_command("expr-0-1")
    with pytest.raises(ValueError, match="unknown reference"):
        RunSpec(reference="auto")


def test_the_oracle_reference_is_the_exact_answer_rounded():
    oracle = OracleBackend()
    reference = OracleReference(oracle)
    exact = reference.run(TANH)
    assert exact.values == [math.tanh(0.5)] * 2 and exact.grads == [0.7864477329659274]
    values, grads = reference.trace(TANH)
    assert values == [0.5, math.tanh(0.5)] and grads == [0.7864477329659274, 1.0]


def test_against_the_oracle_a_wrong_gradient_fails_and_torch_off_cannot_occur():
    oracle = OracleBackend()
    exact = OracleReference(oracle).run(TANH)
    right = judge(TANH, exact, exact, oracle, reference="oracle")
    assert right.verdict == "pass"
    # torch's tanh'(0.5) is the exact one rounded; one ulp off is within the allowance
    ulp_off = Result(values=exact.values, grads=[math.nextafter(exact.grads[0], 1.0)])
    assert judge(TANH, ulp_off, exact, oracle, reference="oracle").verdict in ("pass", "ill_conditioned")
    wrong = Result(values=exact.values, grads=[exact.grads[0] * (1 + 1e-9)])
    verdict = judge(TANH, wrong, exact, oracle, reference="oracle")
    assert verdict.verdict == "fail" and verdict.oracle_consulted
    assert verdict.detail.startswith("grad of leaf v0: engine ") and ", oracle 0.7864477329659274 (allowance" in \
        verdict.detail and "torch" not in verdict.detail
    assert "oracle" in judge(TANH, Result(values=[1.0]), exact, oracle, reference="oracle").detail


def test_an_ill_conditioned_case_where_torch_rounds_as_the_engine_is_ill_conditioned_not_pass():
    # (x + 1e16) - 1e16: float64 loses x's digits, the exact answer keeps them.
    case = Case("t-0-0", "expr", 0, 0, Graph(2, (Node("add", (0, 1)), Node("sub", (2, 1))), (3,)), [1.234, 1e16])
    oracle = OracleBackend()
    float64 = Result(values=[(1.234 + 1e16) - 1e16] * 2, grads=[1.0, 0.0])
    verdict = judge(case, float64, OracleReference(oracle).run(case), oracle, reference="oracle")
    assert verdict.verdict == "ill_conditioned"


def _run(capsys, tmp_path, name, *argv):
    out = tmp_path / f"{name}.csv"
    status = main(["run", "--out", str(out), "--quiet", *map(str, argv)])
    return status, capsys.readouterr().out, out


def test_a_run_against_the_oracle_says_so_everywhere(capsys, tmp_path):
    status, text, out = _run(capsys, tmp_path, "ours", "--reference", "oracle", "--cases", 60,
                             "--json", tmp_path / "r.json", "--junit-xml", tmp_path / "r.xml")
    assert status == 0
    assert "reference: the oracle (exact, rounded to float64; no torch)" in text and "torch_off cannot occur" in text
    sidecar = read_sidecar(out)
    assert sidecar["reference"]["name"] == "oracle" and sidecar["args"]["reference"] == "oracle"
    assert json.loads((tmp_path / "r.json").read_text())["reference"] == "oracle"
    assert 'name="reference" value="oracle"' in (tmp_path / "r.xml").read_text()
    rows = read_report(out)
    assert set(rows["verdict"]) <= {"pass", "ill_conditioned"} and len(rows) == 60
    assert all("--reference oracle" in replay for replay in rows["replay"])
    main(["report", str(out)])
    assert "reference: the oracle" in capsys.readouterr().out


def test_a_planted_bug_is_caught_and_diagnosed_against_the_oracle(capsys, tmp_path):
    status, text, out = _run(capsys, tmp_path, "wrong_tanh", "--reference", "oracle", "--engine",
                             f"{WRONG_TANH}:Value", "--ops", "add,mul,neg,sub,tanh", "--families",
                             "expr,accumulation", "--cases-per-family", 40)
    assert status == 1
    assert "wrong      tanh: gradient" in text and "oracle 0.5965858082813315" in text
    assert "multi_pass backward" in text
    rows = read_report(out)
    assert "torch_off" not in set(rows["verdict"]) and (rows["verdict"] == "fail").any()


def test_replay_against_the_oracle_shows_the_engine_and_the_exact_answer(capsys):
    status = main(["replay", "accumulation-0-24", "--reference", "oracle", "--engine", f"{WRONG_TANH}:Value"])
    text = capsys.readouterr().out
    assert status == 1
    assert "every node, engine and oracle:" in text and "oracle value" in text and "torch" not in text


@pytest.mark.torch
def test_the_oracles_trace_is_torchs_on_a_well_rounded_graph():
    pytest.importorskip("torch")
    from parity.backends.torch import TorchBackend

    reference, torch_backend = OracleReference(OracleBackend()), TorchBackend()
    for case in build_cases("accumulation", 0, 20):
        ours, theirs = reference.trace(case), torch_backend.trace(case)
        for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
            assert (a is None) == (b is None) or 0.0 in (a, b)  # unreached: None, or torch's 0.0
            if a is not None and b is not None:
                assert a == b or abs(a - b) <= 1e-15 * abs(b), (case.case_id, a, b)


@pytest.mark.torch
def test_merging_shards_judged_by_different_references_is_refused(capsys, tmp_path):
    pytest.importorskip("torch")
    for k, reference in ((1, "torch"), (2, "oracle")):
        assert main(["run", "--shard", f"{k}/2", "--cases", "40", "--reference", reference, "--quiet",
                     "--out", str(tmp_path / f"s{k}.csv")]) == 0
    status = main(["merge", str(tmp_path / "s1.csv"), str(tmp_path / "s2.csv"), "--out", str(tmp_path / "m.csv")])
    assert status == 2 and "reference" in capsys.readouterr().err
