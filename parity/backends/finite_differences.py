"""Finite differences: the nudge check, as a backend.

Each leaf's gradient is the central difference (f(x+h) - f(x-h)) / 2h of the
loss, with h = cbrt(eps) * max(1, |x|) (the step that balances truncation
error, ~h**2, against rounding error, ~eps/h), and the loss computed by any
forward backend.  Differences say nothing across a kink (relu, abs at 0, a
pole of 1/x ...): a leaf whose nudge carries some operand of a kinked op over
one of its ``op.kink`` points, that bends some value far from linear over the
step (sin of a huge argument), or whose loss is not finite, gets nan, which
means "no opinion".  An independent check of both engine and torch gradients
on smooth graphs, with no autograd involved.
"""
import dataclasses
import math
import operator
import time

import mpmath

from ..case import Result
from ..ops import OPS
from ..runner import run_all
from ..sandbox.wire import BACKWARD_SPEC_KEYS
from .oracle import float64_range

STEP = (2.0 ** -52) ** (1.0 / 3.0)


def step(x):
    return STEP * max(1.0, abs(x))


class FiniteDifferences:
    name = "finite_differences"

    def __init__(self, forward_backend):
        self.forward = forward_backend

    def run(self, case):
        start = time.perf_counter()
        result = self._run(case)
        result.seconds = time.perf_counter() - start
        return result

    def _run(self, case):
        base = self.forward.run(case)
        if not base.ok:
            return base
        nudges = {}  # leaf -> (x + h, x - h), for finite leaves
        nudged_cases = []
        for i, x in enumerate(case.leaves):
            if math.isfinite(x):
                nudges[i] = (x + step(x), x - step(x))
                nudged_cases += [_with_leaf(case, i, nudge) for nudge in nudges[i]]
        losses = iter([r.values[-1] if r.ok else math.nan for r in run_all(self.forward, nudged_cases)])
        # Gradients accumulate over passes unless zeroed in between, each
        # pass's the seed's multiple (a behaviour check's spec["gradient"]).
        accumulated = (1 if case.zero_grad_between else case.passes) * case.spec.get("gradient", 1.0)
        grads = []
        for i in range(len(case.leaves)):
            if i not in nudges:
                grads.append(math.nan)
                continue
            plus, minus = nudges[i]
            f_plus, f_minus = next(losses), next(losses)
            smooth = (all(math.isfinite(f) for f in (f_plus, f_minus, base.values[-1]))
                      and not _crosses_kink(case, i, plus, minus))
            # Divide by the step actually taken: x + h and x - h are rounded.
            grads.append(accumulated * (f_plus - f_minus) / (plus - minus) if smooth else math.nan)
        return Result(values=base.values, grads=grads)


def _with_leaf(case, i, x):
    leaves = list(case.leaves)
    leaves[i] = x
    # One forward pass is enough; the shared structure key lets torch batch
    # all the nudges of a case (they share its graph).
    return dataclasses.replace(case, leaves=leaves, passes=1, zero_grad_between=False,
                               structure=case.structure or f"fd:{case.case_id}",
                               spec={k: v for k, v in case.spec.items() if k not in BACKWARD_SPEC_KEYS})


def _crosses_kink(case, leaf, plus, minus):
    """Whether moving ``leaf`` over [minus, plus] moves an operand of a
    kinked op onto or over one of its kinks (judged on the operand at minus,
    at the case's point and at plus), or bends a value it moves."""
    graph = case.graph
    depends = [i == leaf for i in range(graph.n_leaves)]
    for node in graph.nodes:
        depends.append(any(depends[a] for a in node.args))
    runs = [_values(case, leaf, x) for x in (minus, case.leaves[leaf], plus)]
    for index in range(graph.n_leaves, graph.n_values):
        if depends[index] and not _nearly_linear(*(run[index] for run in runs)):
            return True
    for node in graph.nodes:
        kinks = OPS[node.op].kink
        for a in node.args if kinks else ():
            if not depends[a]:
                continue
            seen = [run[a] for run in runs]
            if any(mpmath.isnan(v) for v in seen) or any(min(seen) <= k <= max(seen) for k in kinks):
                return True
    return False


def _nearly_linear(at_minus, at_x, at_plus):
    """Whether a value is nearly linear over the step: its second difference
    a thousandth of its first at most, beyond rounding.  Not where the step
    spans oscillations (sin of 1e145) or a sharp bend, where the central
    difference's error (the third derivative's term) is no longer small."""
    if not all(mpmath.isfinite(v) for v in (at_minus, at_x, at_plus)):
        return True  # the loss's finiteness decides
    curvature = abs(at_plus - 2 * at_x + at_minus)
    return curvature <= abs(at_plus - at_minus) / 1000 + 2.0 ** -48 * abs(at_x)


def _values(case, leaf, x):
    """Every value of the graph at the case's leaves with ``leaf`` set to x,
    in mpmath at double precision and float64's range (the oracle's
    functions know every op)."""
    leaves = [mpmath.mpf(v) for v in case.leaves]
    leaves[leaf] = mpmath.mpf(x)
    with mpmath.workprec(53):
        values, _ = case.graph.evaluate(
            leaves, lambda op, operands, const: float64_range(op.apply_oracle(operands, const)),
            operator.add)
    return values
