"""Every family through the harness on our engine: no fail, no error.  Plus
the runner's batching and rows, the trajectory driver, and a broken engine
that the harness must catch.  The reference is torch where it is installed,
else the oracle's exact answer (backends/reference.py)."""
import dataclasses
from pathlib import Path
import math
import time

import pytest

from parity.backends.engine import load_engine
from parity.backends.oracle import OracleBackend
from parity.backends.reference import default_reference, make_reference
from parity.backends.torch import TorchBackend
from parity.case import DERIVATIVE_FAMILIES, FAMILIES
from parity.plan import cost
from parity.cases import EDGE_TABLE, build_cases, case_from_id, n_fixed_cases
from parity.graph import floats_from_json
from parity.report import COLUMNS
from parity import runner
from parity.runner import run_case, run_cases, run_tasks, summarize
from parity.trajectory import TrajectoryOracle, is_trajectory, run_trajectory
from parity.trajectory import rounding_spread as trajectory_rounding_spread

# CI sizes: expr is the bulk (about 5 s on 2 cores); edges is its whole fixed
# sweep plus some of its random graphs.
CI_CASES = {"expr": 2000, "mlp": 40, "accumulation": 200, "function": 300, "edges": n_fixed_cases("edges") + 200,
            "higher_order": n_fixed_cases("higher_order") + 300, "forward": n_fixed_cases("forward") + 300}
SLOW_CASES = {"expr": 20000, "mlp": 400, "accumulation": 3000, "function": 3000, "edges": n_fixed_cases("edges") + 5000,
              "higher_order": n_fixed_cases("higher_order") + 3000, "forward": n_fixed_cases("forward") + 5000}


REFERENCE = default_reference()  # torch where it is installed, else the oracle's exact answer


@pytest.fixture(scope="module")
def backends():
    oracle = OracleBackend()
    return load_engine("engine"), make_reference(REFERENCE, oracle), oracle


def assert_no_fail_or_error(rows):
    bad = [f"{r['case_id']} {r['name']}: {r['verdict']}: {r['detail']}" for r in rows
           if r["verdict"] in ("fail", "error", "unsupported")]
    assert not bad, "\n".join(bad[:20])


def _family(family):
    """A family as a parameter: the higher_order and forward ones need torch as the reference."""
    torch_only = family in DERIVATIVE_FAMILIES
    return pytest.param(family, marks=pytest.mark.torch if torch_only else ())


@pytest.mark.parametrize("family", map(_family, FAMILIES))
def test_family_on_our_engine(family, backends):
    start = time.perf_counter()
    rows = list(run_cases(build_cases(family, 0, CI_CASES[family]), *backends))
    print(f"{family}: {len(rows)} cases in {time.perf_counter() - start:.1f} s: {summarize(rows)[family]}")
    assert len(rows) == CI_CASES[family]
    assert_no_fail_or_error(rows)


@pytest.mark.slow
@pytest.mark.parametrize("family", map(_family, FAMILIES))
def test_family_on_our_engine_many_cases(family, backends):
    assert_no_fail_or_error(list(run_cases(build_cases(family, 1, SLOW_CASES[family]), *backends)))


@pytest.mark.slow
def test_a_chain_of_100000_ops(backends):
    rows = list(run_cases(build_cases("expr", 0, 1, {"depth": 100_000, "edge_rate": 0.0}), *backends))
    assert rows[0]["depth"] == 100_000
    assert_no_fail_or_error(rows)


# The `fail`s of earlier soaks (README, "Harness throughput and soak"): none
# an engine bug.  A one-ulp tanh that torch rounds differently; rounding
# that changes a class (a cancellation to 0, an infinity against nan);
# 1e-19 gradient residues past relu's selected zero; values past a signed
# pole (1.1e-16 against -1.1e-16) the oracle could not know before it signed
# its zeros.  From the soak of 2026-12-04 (39 op rows): a clamp, a max or
# a relu past which float64's value of an operand (a sin of 6e62, an exp2
# of an exp) may lie, which the trials crossed only by chance; and a libm
# tanh 0.9985 ulps off, beyond what a trial moves a value, within the
# exact run's first-order bound (compare.py's module doc).
SOAK_FAILURES = ["expr-0-37628", "expr-0-121600", "expr-0-233934", "expr-0-326353", "expr-0-326356",
                 "expr-0-326361", "expr-0-326362", "expr-0-326363", "expr-0-326364", "expr-0-326366",
                 "expr-0-510304", "expr-0-793129",
                 "expr-0-173343", "expr-0-228531", "expr-0-261306", "expr-0-385886", "expr-0-505562",
                 "expr-0-672158", "expr-0-912072"]


@pytest.mark.slow
def test_the_former_soak_failures_are_judged_right(backends):
    assert_no_fail_or_error(list(run_cases([case_from_id(case_id) for case_id in SOAK_FAILURES], *backends)))


def test_edge_table_is_what_torch_computes(backends):
    """DESIGN.md's table holds for the reference (torch itself, or the
    oracle's exact answer), and our engine matches it."""
    engine, torch_backend, _ = backends
    for case in build_cases("edges", 0, len(EDGE_TABLE)):
        expected = case.spec["expected"]
        want = floats_from_json([expected["value"]]) + floats_from_json(expected["grads"])
        for result in (torch_backend.run(case), engine.run(case)):
            got = result.values[-1:] + result.grads
            assert all((g != g and w != w) or g == w for g, w in zip(got, want)), (case.name, got, want)


# -- the runner ------------------------------------------------------------------
class RecordingTorch(TorchBackend):
    def __init__(self):
        self.batches = []

    def run_batch(self, cases):
        self.batches.append([c.case_id for c in cases])
        return super().run_batch(cases)


@pytest.mark.torch  # torch's batches
def test_runner_batches_consecutive_cases_of_one_structure(backends):
    engine, _, oracle = backends
    torch_backend = RecordingTorch()
    cases = build_cases("expr", 0, 40, {"draws_per_graph": 16})
    rows = list(run_cases(cases, engine, torch_backend, oracle))
    assert [len(b) for b in torch_backend.batches] == [16, 16, 8]
    assert [r["case_id"] for r in rows] == [c.case_id for c in cases]


class RecordingEngine:
    """An engine whose requests say when they start and when their results are collected."""

    def __init__(self, engine):
        self.engine, self.name, self.events = engine, engine.name, []

    def submit(self, cases):
        self.events.append(("start", cases[0].case_id))
        wait = self.engine.submit(cases)

        def results():
            self.events.append(("collected", cases[0].case_id))
            return wait()
        return results


def test_the_engine_starts_on_the_next_group_while_one_is_judged_across_tasks_too(backends, monkeypatch):
    # The judge's work (a buggy engine's estimates and oracle consultations)
    # overlaps the engine's on the next group, one request at a time; the
    # rows are those of the tasks run one by one.
    monkeypatch.setattr(runner, "REQUEST_COST", 1)  # a group a request
    engine, torch_backend, oracle = backends
    recording = RecordingEngine(engine)
    cases = build_cases("expr", 0, 40, {"draws_per_graph": 16})
    tasks = [cases[:16], cases[16:], []]
    rows = run_tasks(tasks, recording, torch_backend, oracle)
    first = next(rows)
    assert recording.events == [("start", "expr-0-0"), ("collected", "expr-0-0"), ("start", "expr-0-16")]
    rows = [first] + list(rows)
    assert recording.events[3:] == [("collected", "expr-0-16"), ("start", "expr-0-32"), ("collected", "expr-0-32")]
    one_by_one = [row for task in tasks for row in run_cases(task, engine, torch_backend, oracle)]
    timing = ("engine_seconds", "torch_seconds")
    assert [{k: v for k, v in row.items() if k not in timing} for row in rows] == [
        {k: v for k, v in row.items() if k not in timing} for row in one_by_one]


def test_a_reader_that_stops_early_leaves_the_engine_idle(backends, monkeypatch):
    monkeypatch.setattr(runner, "REQUEST_COST", 1)  # a group a request
    engine, torch_backend, oracle = backends
    recording = RecordingEngine(engine)
    rows = run_cases(build_cases("expr", 0, 40, {"draws_per_graph": 16}), recording, torch_backend, oracle)
    next(rows)
    rows.close()
    assert recording.events[-2:] == [("start", "expr-0-16"), ("collected", "expr-0-16")]


@pytest.mark.torch  # torch's batches
def test_the_engine_gets_consecutive_groups_in_one_request_up_to_the_budget(backends, monkeypatch):
    # Each request wakes the engine's worker and each reply the judge: small
    # groups go together (across tasks too), torch still runs group by
    # group, and the rows are those of a group a request.
    engine, torch_backend, oracle = backends
    tasks = [build_cases("edges", 0, 60), build_cases("accumulation", 0, 30), build_cases("function", 0, 40)]
    monkeypatch.setattr(runner, "REQUEST_COST", 1)
    one_by_one = list(run_tasks(tasks, engine, torch_backend, oracle))
    recording, recording_torch = RecordingEngine(engine), RecordingTorch()
    monkeypatch.setattr(runner, "REQUEST_COST", 40)
    rows = list(run_tasks(tasks, recording, recording_torch, oracle))
    cases = [case for task in tasks for case in task]
    groups = list(runner._groups(cases))
    starts = [case_id for event, case_id in recording.events if event == "start"]
    assert 1 < len(starts) < len(groups)
    assert [len(batch) for batch in recording_torch.batches] == [len(group) for group in groups]
    # Whole groups, in order, each request within the budget unless a group alone is over it.
    firsts = [group[0].case_id for group in groups]
    assert set(starts) <= set(firsts) and starts[0] == firsts[0]
    bounds = [firsts.index(s) for s in starts] + [len(groups)]
    for start, stop in zip(bounds, bounds[1:]):
        spent = sum(cost(case) for group in groups[start:stop] for case in group)
        assert spent <= 40 or stop == start + 1
        if stop < len(groups):  # the next group did not fit
            assert spent + sum(map(cost, groups[stop])) > 40
    timing = ("engine_seconds", "torch_seconds")
    assert [{k: v for k, v in row.items() if k not in timing} for row in rows] == [
        {k: v for k, v in row.items() if k not in timing} for row in one_by_one]


def test_a_sandboxed_engine_gives_the_same_rows_whatever_the_requests(backends, monkeypatch):
    # Its worker gets many graphs in one message (each graph sent once) and
    # replies a list at a time: the rows are those of a group a request.
    _, torch_backend, oracle = backends
    tasks = [build_cases("expr", 0, 48, {"draws_per_graph": 4, "max_nodes": 30}), build_cases("edges", 0, 40)]
    engine = load_engine("engine", isolation="process")
    try:
        rows = []
        for budget in (1, runner.REQUEST_COST):
            monkeypatch.setattr(runner, "REQUEST_COST", budget)
            rows.append([{k: v for k, v in row.items() if k not in ("engine_seconds", "torch_seconds")}
                         for row in run_tasks(tasks, engine, torch_backend, oracle)])
    finally:
        engine.close()
    assert rows[0] == rows[1] and len(rows[0]) == 88
    assert_no_fail_or_error(rows[1])


def test_a_training_case_is_a_request_of_its_own():
    training = next(case for case in build_cases("mlp", 0, 20) if is_trajectory(case))
    groups = [[case] for case in build_cases("accumulation", 0, 2)] + [[training]] + [
        [case] for case in build_cases("accumulation", 0, 2)]
    requests = list(runner._requests(iter(groups)))
    assert [[group[0].case_id for group in request] for request in requests] == [
        ["accumulation-0-0", "accumulation-0-1"], [training.case_id], ["accumulation-0-0", "accumulation-0-1"]]


def test_rows_have_the_report_schema(backends):
    cases = build_cases("accumulation", 0, 3)
    rows = list(run_cases(cases, *backends))
    assert all(tuple(row) == COLUMNS for row in rows)
    row = rows[0]
    assert row["replay"] == "parity replay accumulation-0-0 --engine engine"
    assert (row["n_nodes"], row["n_leaves"], row["depth"], row["ops"]) == (1, 1, 1, "add")
    assert row["verdict"] == "pass" and row["engine"] == "engine"


def test_summarize_counts_family_by_verdict():
    rows = [{"family": "expr", "verdict": "pass"}] * 3 + [{"family": "edges", "verdict": "fail"}]
    counts = summarize(rows)
    assert counts["expr"]["pass"] == 3 and counts["expr"]["fail"] == 0 and counts["edges"]["fail"] == 1


# -- trajectories ------------------------------------------------------------------
def test_trajectory_on_our_engine_is_engine_nn_training(backends):
    """The driver's K steps equal engine.nn's MLP trained with SGD, bit for bit."""
    from engine.nn import MLP, SGD, mse_loss

    case = case_from_id("mlp-2-0")
    spec = case.spec
    model = MLP(3, [4, 4, 1], seed=2)
    optimizer = SGD(model.parameters(), spec["lr"])
    losses = []
    for _ in range(spec["steps"]):
        optimizer.zero_grad()
        loss = mse_loss([model(x) for x in spec["inputs"]], spec["targets"])
        loss.backward()
        losses.append(loss.data)
        optimizer.step()
    result = run_trajectory(backends[0], case)
    assert result.values == losses + [p.data for p in model.parameters()]
    assert result.grads == [p.grad for p in model.parameters()]
    assert losses[-1] < losses[0]


def test_run_case_judges_a_trajectory_like_run_cases(backends):
    case = case_from_id("mlp-0-0")
    engine_result, torch_result, verdict = run_case(case, *backends)
    assert verdict.verdict == "pass"
    assert len(engine_result.values) == len(torch_result.values) == case.spec["steps"] + len(case.leaves)
    # Not bit for bit: the engine and torch sum a shared value's gradients in different orders.
    assert all(math.isclose(e, t, rel_tol=1e-12) for e, t in zip(engine_result.values, torch_result.values))


def test_trajectory_oracle_judges_in_the_same_shape(backends):
    case = dataclasses.replace(case_from_id("mlp-0-0"), spec={**case_from_id("mlp-0-0").spec, "steps": 3})
    oracle = TrajectoryOracle(backends[2])
    exact, (value_spread, grad_spread) = oracle.run(case), oracle.spread(case, trials=2)
    engine_result = run_trajectory(backends[0], case)
    assert len(exact.values) == len(value_spread) == len(engine_result.values) == 3 + len(case.leaves)
    assert len(grad_spread) == len(exact.grads) == len(case.leaves)
    assert all(0 <= s < 1e-12 for s in value_spread) and any(s > 0 for s in value_spread)
    assert all(math.isclose(e, x, rel_tol=1e-12) for e, x in zip(engine_result.values, exact.values))


@pytest.mark.torch  # the estimate is torch's (TorchBackend.rounding_spread)
def test_a_trajectory_s_estimated_spread_follows_the_oracle_s(backends):
    pytest.importorskip("torch")
    # compare.judge's screen decides a training case on it: where it is
    # known, the exact spread must be within a margin far inside gross_factor.
    case = dataclasses.replace(case_from_id("mlp-0-0"), spec={**case_from_id("mlp-0-0").spec, "steps": 3})
    estimate = trajectory_rounding_spread(backends[1], case)
    value_spread, grad_spread = TrajectoryOracle(backends[2]).spread(case)
    assert len(estimate) == len(value_spread) + len(grad_spread)
    known = [(exact, estimated) for exact, estimated in zip(value_spread + grad_spread, estimate) if estimated == estimated]
    # A small network at ordinary points: linear nearly everywhere (where the
    # first-order effect cancels, float64's own noise is all the runs see,
    # and the estimate is rightly unknown).
    assert len(known) >= 0.9 * len(estimate)
    assert all(exact <= 50 * estimated for exact, estimated in known)
    assert sum(estimated > 0 for _, estimated in known) > len(known) / 2


@pytest.mark.torch  # the estimate is torch's (TorchBackend.rounding_spread)
def test_a_trajectory_s_estimate_is_one_batch_of_its_steps(backends):
    # Once per training case, not once per step (issue "Diagnosis", Speed:
    # a buggy engine's training cases all ask for it), on torch's own steps
    # when the runner hands them over, the same steps when it does not.
    case = dataclasses.replace(case_from_id("mlp-0-0"), spec={**case_from_id("mlp-0-0").spec, "steps": 4})
    steps = []
    torch_result = run_trajectory(backends[1], case, steps)
    assert [s.leaves for s in steps[1:]] == [
        [p - case.spec["lr"] * g for p, g in zip(s.leaves, backends[1].run(s).grads)] for s in steps[:-1]]

    class Counting(TorchBackend):
        calls = []

        def rounding_spread(self, cases, *args, **kwargs):
            self.calls.append(len(cases))
            return super().rounding_spread(cases, *args, **kwargs)

    counting = Counting()
    given = trajectory_rounding_spread(counting, case, steps)
    assert counting.calls == [4]
    assert trajectory_rounding_spread(counting, case) == given  # the steps run again: the same ones
    assert counting.calls == [4, 4]
    assert len(given) == len(torch_result.values) + len(torch_result.grads)


def test_trajectory_reports_the_step_that_failed(backends):
    class FailsOnThirdStep:
        calls = 0

        def run(self, case):
            self.calls += 1
            if self.calls == 3:
                return dataclasses.replace(backends[1].run(case), values=[], grads=[], error="boom")
            return backends[1].run(case)

    result = run_trajectory(FailsOnThirdStep(), case_from_id("mlp-0-0"))
    assert result.error == "step 2: boom"


# -- a broken engine is caught ------------------------------------------------------
OVERWRITING = str(Path(__file__).parent / "engines" / "overwriting.py") + ":Value"


def test_the_harness_catches_an_engine_that_overwrites_gradients(backends):
    _, torch_backend, oracle = backends
    broken = load_engine(OVERWRITING)
    rows = {r["name"]: r for r in run_cases(build_cases("accumulation", 0, 33), broken, torch_backend, oracle)}
    assert rows["a + a"]["verdict"] == "fail"
    assert f"engine 1.0, {torch_backend.name} 2.0" in rows["a + a"]["detail"]
    assert rows["a used 3 times"]["verdict"] == "fail"
    assert rows["diamond"]["verdict"] == "unsupported"  # no tanh


def test_an_engine_without_engine_function_finds_the_function_ops_unsupported(backends):
    _, torch_backend, oracle = backends
    foreign = load_engine(OVERWRITING)
    rows = list(run_cases(build_cases("function", 0, n_fixed_cases("function")), foreign, torch_backend, oracle))
    assert {r["verdict"] for r in rows} == {"unsupported"}
    assert rows[0]["detail"] == "engine lacks fn_square"
