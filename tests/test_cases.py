"""The case families as data: deterministic, replayable by id, JSON round
trips, and graphs that say what their names say (no torch needed)."""
import json
import math
import operator
from pathlib import Path
import subprocess
import sys

import pytest

from engine import Value
from engine.nn import MLP, mse_loss
from parity.case import FAMILIES, Case
from parity.cases import (ACCUMULATION_LEAVES, ACCUMULATION_NAMED, EDGE_TABLE, FAMILY_BUILDERS, build_cases,
                          case_from_id, mlp_graph, n_fixed_cases)
from parity.functions import FUNCTION_OPS
from parity.graph import floats_from_json
from parity.ops import ANY, OP_NAMES, OPS

# Enough of each family to reach past its named cases into its random ones.
SIZES = {"expr": 100, "mlp": 12, "accumulation": 60, "function": 80, "edges": n_fixed_cases("edges") + 20,
         "higher_order": n_fixed_cases("higher_order") + 30, "forward": n_fixed_cases("forward") + 30}


def run_engine(case):
    """Our engine on a case's graph: (output values + loss, leaf grads)."""
    leaves = [Value(x) for x in case.leaves]
    values, loss = case.graph.evaluate(leaves, lambda op, args, c: op.apply_engine(args, c), operator.add)
    for p in range(case.passes):
        if p and case.zero_grad_between:
            for leaf in leaves:
                leaf.grad = 0.0
        loss.backward()
    return [values[o].data for o in case.graph.outputs] + [loss.data], [leaf.grad for leaf in leaves]


def test_every_family_has_a_builder_and_probes_replay_by_id():
    # "probe": the diagnosis's probes (probes.py), never a run's family.
    assert tuple(FAMILY_BUILDERS) == FAMILIES + ("probe",)
    from parity.probes import probe_cases
    probes = probe_cases()
    assert [p.case_id for p in probes] == [f"probe-0-{i}" for i in range(len(probes))]
    assert case_from_id(probes[-1].case_id).to_json() == probes[-1].to_json()


@pytest.mark.parametrize("family", FAMILIES)
def test_build_cases_is_deterministic_and_ids_are_family_seed_index(family):
    first = build_cases(family, 7, SIZES[family])
    second = build_cases(family, 7, SIZES[family])
    assert [c.dumps() for c in first] == [c.dumps() for c in second]
    assert [c.case_id for c in first] == [f"{family}-7-{i}" for i in range(SIZES[family])]
    assert all(c.family == family and c.seed == 7 for c in first)


@pytest.mark.parametrize("family", FAMILIES)
def test_case_from_id_rebuilds_each_case_alone(family):
    cases = build_cases(family, 3, SIZES[family])
    for case in cases[::7] + cases[-3:]:
        assert case_from_id(case.case_id).dumps() == case.dumps()


@pytest.mark.parametrize("family", FAMILIES)
def test_cases_round_trip_through_json(family):
    for case in build_cases(family, 1, SIZES[family]):
        again = Case.from_json(json.loads(case.dumps()))
        assert again.dumps() == case.dumps()
        assert [math.copysign(1.0, x) for x in again.leaves] == [math.copysign(1.0, x) for x in case.leaves]


def test_cases_are_the_same_in_a_fresh_process():
    script = ("from parity.cases import build_cases\n"
              "print(''.join(c.dumps() for f in ('expr', 'mlp', 'accumulation') for c in build_cases(f, 5, 20)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"}, cwd=Path(__file__).parents[1]).stdout.strip()
    here = "".join(c.dumps() for f in ("expr", "mlp", "accumulation") for c in build_cases(f, 5, 20))
    assert out == here


def test_seeds_give_different_cases():
    assert build_cases("expr", 0, 20)[5].dumps() != build_cases("expr", 1, 20)[5].dumps()


@pytest.mark.parametrize("case_id", ["expr-0", "expr-a-1", "nope-0-1", "expr--1-2", ""])
def test_bad_case_ids_are_rejected(case_id):
    with pytest.raises(ValueError):
        case_from_id(case_id)


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown family"):
        build_cases("exprs", 0, 1)


# -- expr ------------------------------------------------------------------------
def test_expr_draws_share_a_structure_and_differ_in_leaves():
    cases = build_cases("expr", 0, 32, {"draws_per_graph": 16})
    assert len({c.structure for c in cases[:16]}) == 1
    assert cases[0].structure != cases[16].structure
    assert all(c.graph == cases[0].graph for c in cases[:16])
    assert len({tuple(c.leaves) for c in cases[:16]}) > 1


def test_expr_mixes_chains_and_dags():
    cases = build_cases("expr", 0, 16 * 60)
    chains = [c for c in cases if c.graph.depth() == c.graph.n_nodes and c.graph.n_nodes > 5]
    dags = [c for c in cases if c.graph.depth() < c.graph.n_nodes]
    assert chains and dags


def test_expr_sizes_reach_the_thousands():
    sizes = [c.graph.n_nodes for c in build_cases("expr", 0, 16 * 200)[::16]]
    assert min(sizes) <= 5 and max(sizes) > 1000


def test_expr_knobs():
    (case,) = build_cases("expr", 0, 1, {"depth": 500})
    assert case.graph.n_nodes == case.graph.depth() == 500
    dags = build_cases("expr", 0, 16 * 20, {"shape": "dag", "max_nodes": 40, "edge_rate": 0.0})
    assert all(c.graph.n_nodes <= 40 for c in dags)
    assert not any(x in (0.0, 1e308) for c in dags for x in c.leaves)


@pytest.mark.parametrize("ops", [("log",), ("sqrt", "pow"), ("log", "neg")])
def test_expr_graphs_of_ops_that_want_positive_operands(ops):
    # Regression: with only such ops and no positive leaf drawn, the
    # generator drew ops forever (none could be placed).
    cases = build_cases("expr", 0, 64, {"ops": ops, "max_nodes": 20, "draws_per_graph": 1, "edge_rate": 0.0})
    assert len(cases) == 64
    assert all(set(case.graph.ops()) <= set(ops) for case in cases)


def test_an_op_row_names_one_domain_per_operand():
    from dataclasses import replace

    with pytest.raises(ValueError, match="'mul': 1 domains for 2 operands"):
        replace(OPS["mul"], domains=(ANY,))


def test_expr_uses_the_builtin_ops_only():
    used = {op for c in build_cases("expr", 0, 16 * 30)[::16] for op in c.graph.ops()}
    assert used <= set(OP_NAMES) and len(used) > 15


# -- mlp -------------------------------------------------------------------------
def test_mlp_case_0_is_micrograds_demo_with_the_seeds_weights():
    case = case_from_id("mlp-4-0")
    model = MLP(3, [4, 4, 1], seed=4)
    assert case.leaves == [p.data for p in model.parameters()]
    assert case.spec["inputs"] == [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    assert case.spec["targets"] == [1.0, -1.0, -1.0, 1.0]
    assert case.spec["steps"] > 0
    assert case_from_id("mlp-5-0").leaves != case.leaves


@pytest.mark.parametrize("index", range(25))
def test_mlp_graph_is_engine_nn_bit_for_bit(index):
    """The graph's loss and gradients equal engine.nn's (fused linear, mse_loss)
    exactly: the same float operations in the same order."""
    case = case_from_id(f"mlp-0-{index}")
    spec = case.spec
    model = MLP(spec["nin"], spec["nouts"], spec["activation"], spec["output_activation"], seed=0)
    for p, x in zip(model.parameters(), case.leaves):
        p.data = x
    loss = mse_loss([model(x) for x in spec["inputs"]], spec["targets"])
    loss.backward()
    values, grads = run_engine(case)
    assert values[-1] == loss.data
    assert grads == [p.grad for p in model.parameters()]


def test_mlp_graph_spells_out_the_neuron_and_the_loss():
    spec = {"nin": 2, "nouts": [1], "activation": "tanh", "output_activation": "linear",
            "inputs": [[2.0, 3.0]], "targets": [0.5]}
    graph = mlp_graph(spec, 3)
    assert graph.render().splitlines()[3:] == [
        "v3 = v0 * 2.0", "v4 = v2 + v3", "v5 = v1 * 3.0", "v6 = v4 + v5",
        "v7 = v6 - 0.5", "v8 = v7 ** 2.0", "v9 = 0.0 + v8", "v10 = v9 / 1.0", "loss = v10"]


def test_mlp_random_specs_vary():
    specs = [c.spec for c in build_cases("mlp", 0, 40)[1:]]
    assert {s["activation"] for s in specs} == {"tanh", "relu", "sigmoid"}
    assert {s["output_activation"] for s in specs} >= {"linear"}
    assert {len(s["nouts"]) for s in specs} == {1, 2, 3}
    assert any(s["steps"] == 0 for s in specs) and any(s["steps"] > 0 for s in specs)


# -- accumulation -------------------------------------------------------------------
def test_accumulation_names_and_expected_gradients():
    by_name = {}
    for case in build_cases("accumulation", 0, n_fixed_cases("accumulation")):
        by_name.setdefault(case.name, []).append(case)
    assert len(by_name) == len(ACCUMULATION_NAMED)
    assert all(len(cases) == len(ACCUMULATION_LEAVES) for cases in by_name.values())
    a_plus_a = by_name["a + a"][0]
    assert run_engine(a_plus_a)[1] == [2.0]
    assert [run_engine(c)[1] for c in by_name["a used 10 times"]] == [[55.0]] * 3
    once = run_engine(by_name["zero_grad between backward calls"][0])[1]
    twice = run_engine(by_name["two backward calls without zero_grad"][0])[1]
    thrice = run_engine(by_name["three passes"][0])[1]
    assert twice == [2 * g for g in once] and thrice == [3 * g for g in once]
    assert any(0.0 in c.leaves for c in by_name["a * a"]) and any(x < 0 for c in by_name["a * a"] for x in c.leaves)


def test_accumulation_random_graphs_reuse_values_and_repeat_passes():
    cases = build_cases("accumulation", 0, n_fixed_cases("accumulation") + 200)[n_fixed_cases("accumulation"):]
    assert {c.passes for c in cases} == {1, 2, 3}
    assert any(c.zero_grad_between for c in cases)
    assert any(len(set(c.graph.outputs)) < len(c.graph.outputs) for c in cases)  # loss = v + v
    assert any(n.args[0] == n.args[1] for c in cases for n in c.graph.nodes if len(n.args) == 2)


# -- function ---------------------------------------------------------------------
def test_function_family_covers_every_function_op_alone_and_mixed():
    cases = build_cases("function", 0, n_fixed_cases("function") + 200)
    alone = {c.graph.nodes[0].op for c in cases if c.graph.n_nodes == 1}
    assert alone == set(FUNCTION_OPS)
    assert any(c.passes == 2 for c in cases)
    mixed = [c for c in cases if c.graph.n_nodes > 1]
    assert any(set(c.graph.ops()) & set(FUNCTION_OPS) and set(c.graph.ops()) - set(FUNCTION_OPS) for c in mixed)


# -- edges ------------------------------------------------------------------------
def test_edges_table_expectations_hold_on_our_engine():
    for case in build_cases("edges", 0, len(EDGE_TABLE)):
        expected = case.spec["expected"]
        values, grads = run_engine(case)
        assert same_floats([values[-1]], floats_from_json([expected["value"]])), case.name
        assert same_floats(grads, floats_from_json(expected["grads"])), case.name


def test_edges_sweep_every_builtin_op_at_every_special_point_and_upstream():
    cases = build_cases("edges", 0, n_fixed_cases("edges"))
    swept = {c.graph.nodes[0].op for c in cases}
    assert swept == set(OP_NAMES)
    for name in ("log", "sqrt", "exp"):
        points = {repr(c.leaves[0]) for c in cases if c.graph.ops() == [name]}
        assert points == {repr(x) for x in OPS[name].edges}
    upstreams = {repr(c.graph.nodes[-1].const) for c in cases if "upstream" in c.name}
    assert upstreams == {"inf", "-inf", "nan", "0.0", "-0.0"}


def same_floats(xs, ys):
    return all((x != x and y != y) or x == y for x, y in zip(xs, ys)) and len(xs) == len(ys)


def test_importing_the_harness_and_its_helpers_loads_neither_torch_nor_pytest():
    script = ("import sys, parity, parity.cases, parity.runner\n"
              "parity.check_function\n"
              "print(sorted({'torch', 'pytest'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[1]).stdout.strip()
    assert out == "[]"
