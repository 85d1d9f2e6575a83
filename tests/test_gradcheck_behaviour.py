"""gradcheck-style behaviour checks (issue 12), as named cases of the
accumulation family (parity/cases.py's BEHAVIOURS): a seed for backward
(``backward(gradient=g)``: scaling, and a zero seed), the graph rebuilt on
fresh leaves (state kept across graphs), a leaf the output does not reach.

Every backend computes them the same way (torch and the oracle follow the
seed; a rebuilt graph's runs must agree); our engine passes them; an engine
whose backward takes no seed gets `unsupported` for the seed cases; and the
planted engines of tests/engines/ (seeded.py's variants) are caught, each
by the finding that names its bug.
"""
import json
import math

import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from parity import cli  # noqa: E402
from parity.backends.engine import load_engine  # noqa: E402
from parity.backends.finite_differences import FiniteDifferences  # noqa: E402
from parity.backends.oracle import OracleBackend  # noqa: E402
from parity.backends.torch import TorchBackend  # noqa: E402
from parity.case import Case  # noqa: E402
from parity.cases import (ACCUMULATION_LEAVES, ACCUMULATION_NAMED, BEHAVIOURS, behaviour, build_cases,  # noqa: E402
                          case_from_id, n_fixed_cases)
from parity.compare import Tolerances  # noqa: E402
from parity.diagnosis import _behaviour_of, probe_findings  # noqa: E402
from parity.graph import Graph, Node  # noqa: E402
from parity.probes import probe_cases  # noqa: E402
from parity.report_files import sidecar_path  # noqa: E402
from parity.runner import run_cases  # noqa: E402
from parity.sandbox import adapter  # noqa: E402
from parity.sandbox.unsupported import UNSUPPORTED  # noqa: E402
from parity.sandbox.wire import decode_cases, encode_cases  # noqa: E402

TORCH, ORACLE = TorchBackend(), OracleBackend()
N_NAMED = n_fixed_cases("accumulation")
NAMED = build_cases("accumulation", 0, N_NAMED)
BEHAVIOUR_CASES = [case for case in NAMED if behaviour(case.spec)]
SEEDED = [case for case in BEHAVIOUR_CASES if "gradient" in case.spec]
GOOD = ("pass", "ill_conditioned", "torch_off")


def verdicts(engine, cases=NAMED):
    return {case.case_id: row for case, row in zip(cases, run_cases(cases, engine, TORCH, ORACLE, Tolerances()))}


# -- the cases ---------------------------------------------------------------------
def test_the_behaviour_checks_are_named_accumulation_cases_after_the_old_ones():
    names = [name for name, *_ in ACCUMULATION_NAMED]
    first = names.index("backward(gradient=2.5)")
    assert not any(spec for *_, spec in ACCUMULATION_NAMED[:first])  # the ids of the cases before stay
    assert first * len(ACCUMULATION_LEAVES) == 33
    assert {behaviour(spec) for *_, spec in ACCUMULATION_NAMED[first:]} == set(BEHAVIOURS)
    assert {case.spec["gradient"] for case in SEEDED} == {2.5, -1.0, 0.001, 0.0}
    assert any(case.passes == 2 for case in SEEDED)
    assert {case.spec.get("rebuild") for case in BEHAVIOUR_CASES} >= {2, 3}
    for case in BEHAVIOUR_CASES:  # replayable by id, spec included
        assert case_from_id(case.case_id).to_json() == case.to_json()
        assert _behaviour_of(case.case_id) == behaviour(case.spec)
    assert _behaviour_of("accumulation-0-0") is None and _behaviour_of(f"accumulation-0-{N_NAMED}") is None
    assert _behaviour_of("expr-0-40") is None


def test_the_worker_gets_the_keys_that_change_backward_and_nothing_else():
    case = next(c for c in SEEDED if c.passes == 2)
    rebuilt = next(c for c in BEHAVIOUR_CASES if "rebuild" in c.spec)
    unreached = next(c for c in BEHAVIOUR_CASES if "unreached" in c.spec)
    decoded = decode_cases(json.loads(json.dumps(encode_cases([case, rebuilt, unreached]))))
    assert [d.spec for d in decoded] == [{"gradient": 2.5}, {"rebuild": rebuilt.spec["rebuild"]}, {}]
    assert decoded[0].passes == 2


def test_the_unreached_cases_have_a_leaf_no_path_reaches():
    for case in BEHAVIOUR_CASES:
        if "unreached" in case.spec:
            reached = set(case.graph.outputs)
            for i in reversed(range(case.graph.n_nodes)):
                if case.graph.n_leaves + i in reached:
                    reached |= set(case.graph.nodes[i].args)
            assert set(case.spec["unreached"]) == set(range(case.graph.n_leaves)) - reached


# -- every backend computes them the same way ---------------------------------------------
def _torch_seeded(case):
    """The case by hand in torch: loss.backward(gradient=g) per pass."""
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in case.leaves]
    values, loss = case.graph.evaluate(leaves, lambda op, args, c: op.apply_torch(args, c), lambda a, b: a + b)
    for p in range(case.passes):
        if p and case.zero_grad_between:
            for leaf in leaves:
                leaf.grad = None
        loss.backward(gradient=torch.tensor(case.spec.get("gradient", 1.0), dtype=torch.float64),
                      retain_graph=True)
    return [0.0 if leaf.grad is None else leaf.grad.item() for leaf in leaves]


def _same(a, b):
    return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))


def test_torch_runs_the_seed_batched_as_one_by_one_and_a_zero_seed_gives_torchs_nan():
    results = TORCH.run_batch(NAMED)
    for case, result in zip(NAMED, results):
        assert result.ok and _same(result.grads, _torch_seeded(case)), case.name
    through_log = [r for c, r in zip(NAMED, results) if c.name.startswith("backward(gradient=0.0) through")]
    # log(a) * b at (0, 3): 0 * inf is nan in torch, never a hardcoded 0
    assert [[math.isnan(g) for g in r.grads] for r in through_log] == [[False, False], [True, True], [False, True]]
    zero = [r for c, r in zip(NAMED, results) if c.name == "backward(gradient=0.0)"]
    assert all(g == 0 for r in zero for g in r.grads)


def test_torch_and_the_oracle_scale_by_the_seed():
    unit = {c.leaves and tuple(c.leaves): r.grads for c, r in zip(NAMED, TORCH.run_batch(NAMED))
            if c.name == "shared subexpression used at two depths"}
    for case in SEEDED:
        if case.name.startswith("backward(gradient=") and case.passes == 1 and case.graph.n_nodes == 5:
            g = case.spec["gradient"]
            expected = [g * x for x in unit[tuple(case.leaves)]]
            assert TORCH.run(case).grads == pytest.approx(expected, rel=1e-15, abs=0), case.name
            assert ORACLE.run(case).grads == pytest.approx(expected, rel=1e-15, abs=0), case.name
    zero = next(c for c in SEEDED if c.name.startswith("backward(gradient=0.0) through") and c.leaves == [0.0, 3.0])
    assert all(math.isnan(g) for g in ORACLE.run(zero).grads)  # the oracle's 0 * inf is nan too


def test_finite_differences_follow_the_seed():
    fd = FiniteDifferences(TORCH)
    case = next(c for c in SEEDED if c.spec["gradient"] == -1.0 and c.leaves == [1.5, -2.0])
    assert fd.run(case).grads == pytest.approx(TORCH.run(case).grads, rel=1e-8)


def test_a_rebuilt_graph_with_nan_gradients_is_no_disagreement():
    # log(a) * b at (0, 3), a zero seed: nan gradients (0 * inf), the same in every run
    graph = Graph(2, (Node("log", (0,)), Node("mul", (2, 1))), (3,))
    case = Case("t-0-0", "accumulation", 0, 0, graph, [0.0, 3.0], spec={"rebuild": 3, "gradient": 0.0})
    for backend in (load_engine("engine"), TORCH):
        result = backend.run(case)
        assert result.ok and all(math.isnan(g) for g in result.grads), result


# -- engines --------------------------------------------------------------------------------
def test_our_engine_passes_every_behaviour_check():
    rows = verdicts(load_engine("engine"), BEHAVIOUR_CASES)
    assert {row["verdict"] for row in rows.values()} == {"pass"}, {k: r["detail"] for k, r in rows.items()}


def test_a_seed_is_found_from_the_backward_signature():
    class Keyword:
        def backward(self, gradient=1.0, create_graph=False): ...

    class Named:
        def backprop(self, retain_graph=False, grad=None): ...

    class NumberDefault:
        def backward(self, start=1): ...

    class NoSeed:
        def backward(self): ...

    class FlagOnly:
        def backward(self, retain_graph=False): ...

    def backward_of(root, seed=1.0): ...

    def positional(root, gradient, /): ...

    found = {label: adapter.seeded_backward(function, name, label)[2] for label, function, name in (
        ("Keyword.backward", Keyword.backward, "backward"), ("Named.backprop", Named.backprop, "backprop"),
        ("NumberDefault.backward", NumberDefault.backward, "backward"),
        ("NoSeed.backward", NoSeed.backward, "backward"),
        ("FlagOnly.backward", FlagOnly.backward, "backward"), ("backward_of", backward_of, None),
        ("positional", positional, None))}
    assert found == {"Keyword.backward": "Keyword.backward(gradient=g)", "Named.backprop": "Named.backprop(grad=g)",
                     "NumberDefault.backward": "NumberDefault.backward(start=g)",
                     "NoSeed.backward": "none: NoSeed.backward(self) takes no gradient argument",
                     "FlagOnly.backward": "none: FlagOnly.backward(self, retain_graph) takes no gradient argument",
                     "backward_of": "backward_of(seed=g)", "positional": "positional(g)"}
    calls = []
    call, why, _ = adapter.seeded_backward(lambda root, gradient, /: calls.append((root, gradient)), None, "f")
    call("root", 2.5)
    assert why is None and calls == [("root", 2.5)]


def test_an_engine_without_a_seed_replies_unsupported_as_higher_order_and_forward_mode_do():
    from parity.backends.engine import _result
    from parity.sandbox.engine_runner import EngineRunner

    class NoSeed:
        def __init__(self, data):
            self.data, self.grad = data, 0.0

        def backward(self):
            self.grad = 1.0

    case = Case("t-0-0", "accumulation", 0, 0, Graph(1, (), (0,)), [1.5], spec={"gradient": 2.0})
    reply = EngineRunner(NoSeed, "1").run(case)
    assert reply[2].startswith(UNSUPPORTED)  # the one mark of a case the engine has no way to run
    assert _result(reply).unsupported == "backward(gradient=g) (NoSeed.backward(self) takes no gradient argument)"


def test_micrograd_without_a_seed_gets_unsupported_seed_cases_and_passes_the_others():
    engine = load_engine("tests/engines/micrograd.py:Value")
    try:
        rows = verdicts(engine, BEHAVIOUR_CASES)
    finally:
        engine.close()
    for case in BEHAVIOUR_CASES:
        row = rows[case.case_id]
        if "gradient" in case.spec:
            assert row["verdict"] == "unsupported", row
            if "log" not in case.graph.ops():  # micrograd has no log: that one lacks the op
                assert row["detail"] == ("engine lacks backward(gradient=g) (Value.backward(self) takes no gradient "
                                         "argument)"), row
        else:
            assert row["verdict"] == "pass", (case.name, row["detail"])


def test_an_engine_with_a_seed_passes_them_all():
    engine = load_engine("tests/engines/seeded.py:Value")
    try:
        assert engine.adapter["backward_gradient"] == "Value.backward(gradient=g)"
        rows = verdicts(engine)
    finally:
        engine.close()
    for case in NAMED:
        row = rows[case.case_id]
        assert row["verdict"] in GOOD or (row["verdict"] == "unsupported" and "log" in case.graph.ops()), row


# -- planted bugs, caught and named -----------------------------------------------------------
def run_and_diagnose(tmp_path, engine_file):
    out = tmp_path / "run.csv"
    cli.main(["run", "--engine", f"tests/engines/{engine_file}:Value", "--families", "accumulation",
              "--cases-per-family", str(N_NAMED), "--out", str(out), "--quiet"])
    sidecar = json.loads(sidecar_path(out).read_text())
    return sidecar["diagnosis"], sidecar["verdicts"]


def bad_count(verdict_counts):
    return verdict_counts.get("fail", 0) + verdict_counts.get("error", 0)


def test_an_engine_that_ignores_its_seed_fails_with_the_seed_findings(tmp_path, capsys):
    findings, counts = run_and_diagnose(tmp_path, "ignores_seed.py")
    by_part = {f["part"]: f for f in findings}
    assert set(by_part) == {BEHAVIOURS["gradient"], BEHAVIOURS["zero_gradient"]}, [f["part"] for f in findings]
    assert all(f["op"] == "backward" and f["kind"] == "wrong" for f in findings)
    # 4 seeded graphs with g != 0 and one with g = 0 (the other needs log), 3 leaf draws each
    assert by_part[BEHAVIOURS["gradient"]]["cases"] == 12 and by_part[BEHAVIOURS["zero_gradient"]]["cases"] == 3
    assert bad_count(counts) == 15
    assert "backward(gradient=g) does not scale the gradients by g" in capsys.readouterr().out


def test_an_engine_keeping_state_across_graphs_is_caught_by_a_rebuilt_graph(tmp_path, capsys):
    findings, counts = run_and_diagnose(tmp_path, "keeps_state.py")
    (rebuild,) = [f for f in findings if f["part"] == BEHAVIOURS["rebuild"]]
    assert rebuild["op"] == "backward" and rebuild["kind"] == "wrong"
    assert "identical graphs (each built on fresh leaves) give different results: grad of leaf v0" in rebuild["detail"]
    # every bad case of the run is a rebuilt graph's, and that finding explains it
    assert rebuild["cases"] == bad_count(counts) == counts["error"] >= 5
    capsys.readouterr()


def test_an_engine_giving_an_unreached_leaf_a_gradient_is_caught(tmp_path, capsys):
    findings, counts = run_and_diagnose(tmp_path, "unreached_gradient.py")
    assert [(f["op"], f["part"], f["kind"]) for f in findings] == [("backward", BEHAVIOURS["unreached"], "wrong")]
    assert findings[0]["cases"] == bad_count(counts) == 6
    assert findings[0]["detail"].startswith("grad of leaf v1: engine 1.0, torch 0.0")
    capsys.readouterr()


def test_a_behaviour_probe_is_no_evidence_where_its_control_fails_too():
    # micrograd's repeated backward() over-counts: its seeded two-pass probe
    # would fail for that alone (were it run), and its control does; so no
    # seed finding, whatever the seeded probe says.
    probes = [p for p in probe_cases([]) if p.spec["op"] == "backward" and p.spec["probe"] != "deep"]
    rows = []
    for probe in probes:
        bad = probe.passes > 1
        rows.append({"verdict": "fail" if bad else "pass", "detail": "grad of leaf v0: engine 1.0, torch 2.0",
                     "replay": ""})
    findings = probe_findings(rows, probes)
    assert [f.part for f in findings if f.op == "backward"] == [
        "repeated backward() on one graph (torch accumulates, as with retain_graph=True)"]
    # the zero seed's graph through log has a control probe of its own
    assert any(p.spec["probe"] == "control" and p.graph.ops() == ["log", "mul"] for p in probes)
