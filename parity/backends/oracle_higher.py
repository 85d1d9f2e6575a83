"""The oracle's higher derivatives and tangents: its exact gradient (and
forward pass), differenced.

The oracle's reverse pass (oracle.py) gives the exact gradient G(x) of a
graph at any leaves x, in mpmath.  A higher_order case's quantities are
derivatives of it, taken here by central differences at 256 bits:
d/dx_j F(x) = (F(x + h e_j) - F(x - h e_j)) / 2h, nested once more for a
third derivative, with h = 2**-40 times max(1, |x_j|).  The truncation
error is about h**2 of the next derivative (2**-80 relative) and the
rounding error 2**-256 / h per level: both far below float64's 2**-53.
A Hessian-vector product is one directional difference of G along the
vector (the Hessian is symmetric where it exists); a forward case's
tangents, one directional difference of the outputs and the loss.

Central differences need a smooth neighbourhood: where one crosses a kink
(relu at 0, a max at a tie that the step breaks) or the function turns
within the step (cos of 2.7e53: a step of 2**-40 relative is many periods),
the differences at h and at h / 64 disagree.  The quantity's spread is then
infinite: float64 cannot pin it either (one rounding of cos's argument
there moves it as far), so any answer is within it - a false fail of a
correct engine is the worse error, and a buggy op fails elsewhere.

The spread, as oracle.py's: per trial, every intermediate value, gradient
contribution and sum of G multiplied by (1 + d * 2**-53), the same d at
every point the differences visit (one seeded sequence per trial, restarted
at each point), so a trial differentiates a perturbed but smooth function;
kept at full precision, not rounded to 53 bits, so the differences still
see the step.
"""
import math
import random
from types import SimpleNamespace

import mpmath

from .oracle import UNIT_ROUNDOFF, _deviation, _forward_backward, float64_range, to_float

mpf = mpmath.mpf
STEP = mpf(2) ** -40
KINK_STEP_RATIO = 64
SMOOTH = mpf(2) ** -70  # |F(h) - F(h / 64)| beyond this (relative, or absolute below 1): a kink crossed


def quantities(case, rounded=lambda: float64_range, step=STEP):
    """The case's higher derivatives as mpf, in derivative_names' order;
    ``rounded()`` gives the function every computed number goes through."""
    graph, spec = case.graph, case.spec
    cache = {}

    def run(x):
        key = tuple(x)
        if key not in cache:
            point = SimpleNamespace(graph=graph, leaves=list(x), passes=1, zero_grad_between=False)
            cache[key] = _forward_backward(point, rounded())
        return cache[key]

    def gradient(x):
        return run(x)[1]

    x0 = [mpf(v) for v in case.leaves]
    steps = [step * max(1, abs(v)) for v in x0]
    if case.family == "forward" and spec.get("nested"):
        # d/dx [x * d/dy (graph)] by nested jvps: the same as the higher_order
        # family's d2 / dy dx with the first derivative times x
        as_reverse = SimpleNamespace(graph=graph, leaves=case.leaves, family="higher_order",
                                     spec={"derivatives": [[1, 0]], "times_leaf": 0})
        return quantities(as_reverse, rounded, step) * 2
    if case.family == "forward":  # the outputs' and the loss's tangents: a difference of the values
        direction = [mpf(t) for t in spec["tangents"]]
        up = run([v + step * t for v, t in zip(x0, direction)])[0]
        down = run([v - step * t for v, t in zip(x0, direction)])[0]
        return [(a - b) / (2 * step) for a, b in zip(up, down)]
    if "hvp" in spec:
        direction = [mpf(c) for c in spec["hvp"]]
        up = gradient([v + step * c for v, c in zip(x0, direction)])
        down = gradient([v - step * c for v, c in zip(x0, direction)])
        return [(a - b) / (2 * step) for a, b in zip(up, down)]

    def derivative(x, index):
        if len(index) == 1:
            g = gradient(x)[index[0]]
            return g * x[spec["times_leaf"]] if "times_leaf" in spec else g
        *prefix, j = index
        up, down = list(x), list(x)
        up[j] += steps[j]
        down[j] -= steps[j]
        return (derivative(up, prefix) - derivative(down, prefix)) / (2 * steps[j])

    return [derivative(x0, list(index)) for index in spec["derivatives"]]


def exact(case):
    """(exact, smooth): the quantities, and per quantity whether the
    differences at two steps agree (no kink crossed)."""
    with mpmath.workprec(256):
        coarse = quantities(case)
        fine = quantities(case, step=STEP / KINK_STEP_RATIO)
        smooth = [abs(a - b) <= SMOOTH * max(1, abs(a)) for a, b in zip(coarse, fine)]
        return [to_float(x) for x in fine], smooth


def spread(case, exact_values, trials, seed=0):
    """Per quantity the largest |trial - exact| over ``trials`` perturbed
    differentiations (module doc)."""
    err = [0.0] * len(exact_values)
    with mpmath.workprec(256):
        for trial in range(trials):
            perturbed = quantities(case, rounded=_perturbation(seed, trial))
            err = [max(e, _deviation(p, mpf(x)) if math.isfinite(x) else e) for e, p, x in
                   zip(err, perturbed, exact_values)]
    return err


def _perturbation(seed, trial):
    """A factory of the ``rounded`` function of one trial: each call starts
    the trial's sequence of d over, so every point sees the same d per operation."""
    def rounded():
        uniform = random.Random(f"{seed}:{trial}").uniform
        return lambda x: float64_range(x * (1 + mpf(uniform(-1.0, 1.0)) * UNIT_ROUNDOFF))
    return rounded
