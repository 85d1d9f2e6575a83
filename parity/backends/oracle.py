"""The oracle: the graph evaluated exactly enough, in mpmath.

Leaves convert exactly from float64; every op and every backward step runs at
``precision_bits`` (256 by default, so for the graphs here the result is the
exact one rounded once), with the op table's mpmath functions and local
partial derivatives (torch's conventions at edges).  After every operation
the number is put in float64's exponent range - overflow to ±inf, underflow
to 0 - so the oracle overflows where float64 does; subnormals keep their full
precision.

mpf has no -0.0, and the sign of a zero decides the sign of an infinity
(1 / -0.0 = -inf, and exp of that is 0, not inf).  So the oracle keeps each
zero's float64 sign beside it, and where an op meets a zero - a zero operand
or a zero result - it reads the op row's sign rules (parity/signs.py: a
formula for the value and for each partial, as torch computes them, over
the float64 operands, zeros signed): a zero result takes the value
formula's sign, and an infinite value or partial takes its formula's sign
where that is infinite too.  Magnitudes stay mpmath's; only IEEE signs come
from the rules, one op at a time.  The rules were taken from torch and are
checked against it at every edge point (tests/test_signs.py); the oracle
needs no torch.  (A row made at run time without rules has its signs from
torch, as the oracle once had all of them; without torch, a case that
meets a zero there is an oracle error.)

``spread`` estimates what float64 rounding alone does to each quantity: it
reruns forward and backward with every intermediate value, gradient
contribution and gradient sum multiplied by (1 + d * 2**-53), d uniform in
[-1, 1], and reports the largest deviation from the exact result.  Large
spread means an ill-conditioned quantity (cancellation, a steep function),
where two correct float64 evaluations may legitimately disagree.  It also
covers the oracle's own blind spot: 256 bits do not hold 1 + 1e300 - 1e300.
Where torch's formula for an op cancels inside the op (gelu's 1 + erf(x)),
its row's ``formula_error`` says how far off that makes it, and the trials
add noise that size to the op's value and partials.

A correct engine may also apply the chain rule in another order than
torch's reverse mode: path by path (each path's product of local
derivatives, summed at the leaf), or distributing products over sums.  Its
rounding then scales with the sum over paths of |product of the local
derivatives| - the gradient's *magnitude*, computed alongside the exact run
as the adjoint of absolute values - not with the gradient itself: where
paths cancel (``v - v`` downstream of ``w - w``), the gradient is exactly 0
and a path-by-path sum leaves ulps of the paths.  So a leaf gradient's
spread is at least u times its magnitude.

Backward follows torch's engine where that changes results: gradients sum
in torch's order, partials overflow like float64 numbers, and a partial of
None (the op table's mark for torch selecting zero, as relu's backward
does) passes 0 even for a nan upstream gradient.
"""
import collections
import functools
import math
from math import isfinite as _isfinite
import random
import time

import mpmath
from mpmath.libmp import MPZ, mpf_mul

from ..case import DERIVATIVE_FAMILIES, Result
from ..ops import OPS
from ..sandbox.engine_ops import clamp_bounds

mpf = mpmath.mpf
UNIT_ROUNDOFF = mpf(2) ** -53
UNIT_ROUNDOFF_FLOAT = 2.0 ** -53
FLOAT64_BITS = 53
# float64 rounds to inf from halfway between the largest float and 2**1024,
# and to 0 at and below half the smallest subnormal.  (2**1024 - 2**970
# needs 54 bits: more than mpmath's default precision.)
with mpmath.workprec(64):
    OVERFLOW = mpf(2) ** 1024 - mpf(2) ** 970
UNDERFLOW = mpf(2) ** -1075


def float64_range(x):
    """x with float64's overflow and underflow (precision untouched)."""
    # Every number the oracle computes comes through here, and mpf
    # comparisons cost microseconds: first, from the (sign, mantissa,
    # exponent, bit count) tuple, pass a nonzero number whose magnitude,
    # in [2**(exponent + bits - 1), 2**(exponent + bits)), is at least
    # 2**-1074 and under 2**1023: nowhere near either limit.
    parts = getattr(x, "_mpf_", None)
    if parts is not None and parts[1] and -1074 < parts[2] + parts[3] < 1024:
        return x
    if not mpmath.isfinite(x):
        return x
    magnitude = abs(x)
    if magnitude >= OVERFLOW:
        return mpf("inf") if x > 0 else mpf("-inf")
    if magnitude <= UNDERFLOW:
        return mpf(0)
    return x


def to_float(x):
    """The float64 nearest to x (ties to even), subnormals rounded once."""
    x = float64_range(x)
    if not mpmath.isfinite(x):
        return float(x)
    man, exp = x.man_exp
    # int -> float and int / int are correctly rounded in CPython.
    magnitude = float(man << exp) if exp >= 0 else man / (1 << -exp)
    return -magnitude if x < 0 else magnitude


# Cases whose exact run and trials are kept: compare.judge asks one case for
# a run and then spreads over more and more trials, and a trajectory asks
# each of its steps in turn.
KEPT_CASES = 64


class _Evaluation:
    """One case as the oracle knows it: the exact run (values, grads, leaf
    magnitudes), and per seed the perturbed trials run so far, each a list
    of deviations per quantity, with the generator that continues them."""

    def __init__(self, exact, node_values, value_bounds, kinks):
        self.exact = exact
        self.node_values = node_values  # every value of the graph, exact
        self.value_bounds = value_bounds  # each value's first-order bound (_value_bounds)
        self.kinks = kinks  # _Kinks: the values whose bound reaches a kink, and the unknowable ones
        self.trials = {}  # seed -> (random.Random, [deviations of each trial])
        self._kink_leaves = None

    def kink_leaves(self, case):
        if self._kink_leaves is None:
            self._kink_leaves = _near_kink_leaves(case.graph, self.node_values, self.kinks)
        return self._kink_leaves

    def unknowable_values(self, case):
        """Per value of a Result (each output, then the loss): whether it is
        unknowable (_Kinks)."""
        outputs = [self.kinks.unknowable[o] for o in case.graph.outputs]
        return outputs + [any(outputs)]


class OracleBackend:
    name = "oracle"

    def __init__(self, precision_bits=256):
        self.precision_bits = precision_bits
        self._evaluations = collections.OrderedDict()  # key -> _Evaluation, the most recent last
        self._higher_kept = {}  # a higher_order case's key -> its exact higher derivatives

    def _evaluation(self, case):
        """The case's _Evaluation, from _forward_backward(case, float64_range,
        magnitudes=True) the first time: the last KEPT_CASES are kept (and
        their runs only read), keyed on everything they depend on."""
        # Leaves by repr: -0.0 == 0.0, but the oracle tells them apart.
        key = (case.graph, tuple(map(repr, case.leaves)), case.passes, case.zero_grad_between, repr(_seed(case)),
               mpmath.mp.prec)
        evaluation = self._evaluations.pop(key, None)
        if evaluation is None:
            trace, bounds, kinks = [], [], _Kinks()
            evaluation = _Evaluation(_forward_backward(case, float64_range, magnitudes=True, trace=trace,
                                                       bounds=bounds, kinks=kinks),
                                     trace[0], bounds, kinks)
        self._evaluations[key] = evaluation
        if len(self._evaluations) > KEPT_CASES:
            self._evaluations.popitem(last=False)
        return evaluation

    @property
    def version(self):
        return f"mpmath {mpmath.__version__}, {self.precision_bits} bits"

    def run(self, case):
        """The exact Result."""
        start = time.perf_counter()
        try:
            with mpmath.workprec(self.precision_bits):
                values, grads, _ = self._evaluation(case).exact
            exact = [to_float(x) for x in values + grads]
            result = Result(values=exact[:len(values)], grads=exact[len(values):])
            if case.family == "higher_order":
                result.grads += self._higher(case)[0]
            elif case.family == "forward":
                result.grads = self._higher(case)[0]
                if case.spec.get("nested"):  # x * d/dy (graph): its value from the exact gradient
                    result.values = [to_float(mpf(case.leaves[0]) * grads[1])] * 2
        except Exception as exc:  # a backend reports, it does not raise
            result = Result(error=f"oracle: {type(exc).__name__}: {exc}")
        result.seconds = time.perf_counter() - start
        return result

    def trace(self, case):
        """(values, grads): every value of the graph (leaves, then nodes),
        exact and rounded, and its gradient after the case's backward passes
        (None where none reaches it), as TorchBackend.trace gives torch's."""
        with mpmath.workprec(self.precision_bits):
            trace = []
            _forward_backward(case, float64_range, trace=trace)
            values, adjoint = trace
            accumulated = 1 if case.zero_grad_between else case.passes
            return ([to_float(x) for x in values],
                    [None if g is None else to_float(float64_range(g * accumulated)) for g in adjoint])

    def spread(self, case, trials=8, seed=0):
        """(value_err, grad_err): per value of Result.values and per leaf
        gradient, the largest |perturbed - exact| over ``trials`` runs with
        every intermediate moved at random by up to float64's unit roundoff
        and rounded to float64's precision; a gradient's at least u times
        its magnitude (the module doc).  0 where the perturbed runs all
        equal the exact one (nan and infinities included), inf where they
        leave its class.  The runs are one seeded sequence, and a case's
        are kept: asked again for more trials, only the new ones run.

        ``trials=0`` runs none: each value's first-order bound instead (the
        exact run's running error bound, _value_bounds) and each gradient's
        magnitude floor - cheap, from the exact run alone, and wider than
        the trials' sample of the same first-order effect; compare.judge
        asks it first when the oracle is the reference (an ill-conditioned
        value within it needs no trial)."""
        if trials == 0 and case.family not in ("higher_order", "forward"):
            with mpmath.workprec(self.precision_bits):
                evaluation = self._evaluation(case)
                _, grads, magnitudes = evaluation.exact
                grad_err = [UNIT_ROUNDOFF_FLOAT * m if mpmath.isfinite(g) else 0.0
                            for m, g in zip(magnitudes, grads)]
                for leaf in evaluation.kink_leaves(case):
                    grad_err[leaf] = math.inf
                return list(evaluation.value_bounds), grad_err
        with mpmath.workprec(self.precision_bits):
            evaluation = self._evaluation(case)
            values, grads, magnitudes = evaluation.exact
            rng, deviations = evaluation.trials.setdefault(seed, (random.Random(seed), []))
            while len(deviations) < trials:
                try:
                    deviations.append(_trial(case, values + grads, rng))
                except BaseException:
                    del evaluation.trials[seed]  # the generator moved on mid-run: start over next time
                    raise
        err = [0.0] * (len(values) + len(grads))
        for deviation in deviations[:trials]:
            err = list(map(max, err, deviation))
        # The trials move each value by half an ulp: past a jump that
        # float64 may cross only a chance trial crosses it.
        for i, unknowable in enumerate(evaluation.unknowable_values(case)):
            if unknowable:
                err[i] = math.inf
        # Not where the exact gradient is infinite or nan: its class decides.
        grad_err = [max(e, UNIT_ROUNDOFF_FLOAT * m) if mpmath.isfinite(g) else e
                    for e, m, g in zip(err[len(values):], magnitudes, grads)]
        for leaf in evaluation.kink_leaves(case):  # float64 may put a kink's operand on its other side
            grad_err[leaf] = math.inf
        if case.family in DERIVATIVE_FAMILIES:
            exact, smooth = self._higher(case)
            # At least u times the case's largest derivative: where terms
            # cancel to an exact 0 an engine leaves ulps of them, as a
            # gradient's spread is at least u times its magnitude.
            scale = max((abs(x) for x in exact + [to_float(g) for g in grads] if math.isfinite(x)), default=0.0)
            higher = [max(s, UNIT_ROUNDOFF_FLOAT * scale) if ok else math.inf
                      for s, ok in zip(oracle_higher.spread(case, exact, trials), smooth)]
            grad_err = higher if case.family == "forward" else grad_err + higher
        return err[:len(values)], grad_err

    def _higher(self, case):
        """(exact, smooth) of a higher_order case's higher derivatives or a
        forward case's tangents (oracle_higher.py), the last few cases' kept."""
        key = (case.graph, tuple(map(repr, case.leaves)), repr(case.spec))
        if key not in self._higher_kept:
            if len(self._higher_kept) >= KEPT_CASES:
                self._higher_kept.pop(next(iter(self._higher_kept)))
            self._higher_kept[key] = oracle_higher.exact(case)
        return self._higher_kept[key]


# _value_bounds: per value of a case's Result (each output, then the loss), a
# first-order bound on how far a float64 evaluation that rounds each op's
# result once (by up to u, relative) can be from the exact value: the running
# error bound E(out) = u |out| + sum over operands of |d out / d operand| *
# E(operand) (plus the row's formula error), leaves exact; the loss adds u
# times each partial sum.  0 for a value that is not finite (its class is
# what is at stake, which the trials see), infinite past an infinite partial
# and for an unknowable value (_Kinks); carried at slope 1 through a kink it
# reaches where the value is continuous.  Computed by the exact run
# (_forward_backward's ``bounds``) from the partials its backward pass takes
# anyway: no perturbed trial.


# A computed value this many ulps from a kink may lie on its other side in
# float64: torch's kernels are within an ulp, its c / x rounds twice (the
# reciprocal, then the product), and a trial moves a value by half an ulp
# at most, so the trials cannot cross such a kink.
KINK_ULPS = 2


def _kink_points(node, op):
    return clamp_bounds(node.const) if node.op == "clamp" else op.kink


# Ops whose value is continuous, with slopes of at most 1, across their
# kinks: a bound that reaches one carries on at slope 1.  Past any other
# kink (a pole, log's or sqrt's 0, softplus's threshold, where its value
# jumps by 2e-9) float64 may carry a value anywhere.
CONTINUOUS_AT_KINKS = frozenset({"abs", "relu", "leaky_relu", "clamp", "max", "min"})


class _Kinks:
    """Per value of a graph, as the exact run finds them: ``reached``, its
    op's kink is within an operand's first-order bound (_value_bounds) - a
    clamp bound, relu's 0, a pole, the other operand of a max or min - and
    ``unknowable``, past a jump it reaches, or computed from such a value.
    A first-order bound holds on one side of a kink only:
    clamp(sin(6e62), 0, 1) is exactly 0, its partial 0, where float64's
    sin(6e62) is anything in [-1, 1]; and the trials, each moving the
    operand at random, find the other side only by chance (expr-0-672158 in
    a 1,000,000-case soak: 2 trials stayed on the clamped side, the engine
    did not).  Beyond a reached kink the gradient of every leaf below it
    is unknowable too (_near_kink_leaves).  A leaf is exact: a bug at a kink
    still shows."""

    def __init__(self):
        self.reached, self.unknowable = [], []

    def add(self, node, op, operands, error):
        """Record the next value's; its bound: infinite for an unknowable
        one, else None where _running_error gives it."""
        reached = _kink_reached(node, op, operands, error)
        unknowable = any(self.unknowable[a] for a in node.args) or (reached and node.op not in CONTINUOUS_AT_KINKS)
        self.reached.append(reached)
        self.unknowable.append(unknowable)
        return math.inf if unknowable else None


def _kink_reached(node, op, operands, error):
    errors = [error[a] for a in node.args]
    if node.op in ("max", "min"):  # max(x, x) is x, whatever x is
        a, b = operands
        return node.args[0] != node.args[1] and bool(errors[0] or errors[1]) \
            and not (mpmath.isnan(a) or mpmath.isnan(b)) and abs(a - b) <= errors[0] + errors[1]
    return any(e and mpmath.isfinite(x) and abs(x - k) <= e
               for x, e in zip(operands, errors) for k in _kink_points(node, op))


def _near_kink_leaves(graph, values, kinks):
    """The leaves whose gradient float64's own roundings can make jump: the
    ancestors of an unknowable value or of the operands of a reached kink
    (_Kinks), of a computed operand
    within KINK_ULPS ulps of a nonzero kink point of its op (a clamp bound,
    softplus's threshold: the gradient there is one on one side, another on
    the other), or of a max's or min's two operands within that of a tie
    (half the gradient each, or all of it to one).  Zero kinks (relu, abs)
    need no help: the trials' relative perturbations cross them wherever
    rounding can (a cancellation's residue), and a leaf at a kink is exact,
    so a bug there still shows."""
    n = graph.n_leaves
    seeds = {v for v in range(n, graph.n_values) if kinks.unknowable[v]}
    seeds.update(a for v in range(n, graph.n_values) if kinks.reached[v] for a in graph.nodes[v - n].args)
    for i, node in enumerate(graph.nodes):
        op = OPS[node.op]
        operands = [values[a] for a in node.args]
        if node.op in ("max", "min"):
            a, b = node.args
            if a != b and max(a, b) >= n and _within_ulps(operands[0], operands[1]):
                seeds.update(node.args)
            continue
        points = _kink_points(node, op)
        for a, x in zip(node.args, operands):
            if a >= n and any(k != 0 and _within_ulps(x, mpf(k)) for k in points):
                seeds.add(a)
    leaves, seen, stack = set(), set(), list(seeds)
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v < n:
            leaves.add(v)
        else:
            stack.extend(graph.nodes[v - n].args)
    return leaves


def _within_ulps(x, y):
    if not (mpmath.isfinite(x) and mpmath.isfinite(y)):
        return False
    return abs(x - y) <= KINK_ULPS * 2 * UNIT_ROUNDOFF * max(abs(x), abs(y))


def _trial(case, exact, rng):
    """One perturbed run of OracleBackend.spread, drawing from ``rng``: its
    deviation from ``exact`` (values, then grads), per quantity."""
    uniform, make_mpf = rng.uniform, mpmath.mp.make_mpf
    prec, rounding = mpf.context._prec_rounding  # spread's, for the whole run

    def perturb(x):
        # float64_range(x * (1 + mpf(d) * UNIT_ROUNDOFF)), d uniform in
        # [-1, 1], on libmp tuples where it can: the perturbed runs spend
        # most of their time here, and four mpf objects a call cost more
        # than the arithmetic.  The factor is exact (see _exact_factor),
        # and x * factor rounds as mpf's * does: the same number.
        d = uniform(-1.0, 1.0)
        parts = getattr(x, "_mpf_", None)
        factor = None if parts is None else _exact_factor(d, prec)
        if factor is None:
            return float64_range(x * (1 + mpf(d) * UNIT_ROUNDOFF))
        # Rounded to float64's 53 bits: a trial is a float64 evaluation
        # with noise, so roundings that change a quantity's class (a
        # cancellation to exactly 0, an exponent rounded to an integer)
        # happen in the trials as they can in the engine and in torch.
        product = mpf_mul(parts, factor, FLOAT64_BITS, rounding)
        if product[1] and -1074 < product[2] + product[3] < 1024:  # float64_range's fast case
            return make_mpf(product)
        return float64_range(make_mpf(product))

    def noise(size):
        # d * u * size, d uniform in [-1, 1]: what a formula error can do
        if not mpmath.isfinite(size):
            return 0
        return mpf(uniform(-1.0, 1.0)) * UNIT_ROUNDOFF * size

    values, grads, _ = _forward_backward(case, perturb, noise=noise)
    return [_deviation(got, want) for got, want in zip(values + grads, exact)]


def _exact_factor(d, prec):
    """1 + d * 2**-53 as a libmp tuple, when it fits in prec bits (so that
    mpf arithmetic computes it without rounding, and a normalized tuple is
    unique); None otherwise.  d from uniform(-1, 1) is a multiple of 2**-52:
    106 bits at most."""
    numerator, denominator = d.as_integer_ratio()  # denominator: a power of 2
    shift = denominator.bit_length() - 1 + 53
    mantissa = (1 << shift) + numerator  # (1 + d * 2**-53) * 2**shift, positive
    if mantissa.bit_length() > prec:
        return None
    # Normalized as from_man_exp would (an odd mantissa), at a third of its cost.
    zeros = (mantissa & -mantissa).bit_length() - 1
    mantissa >>= zeros
    return (0, MPZ(mantissa), zeros - shift, mantissa.bit_length())


def _deviation(got, want):
    if (mpmath.isnan(got) and mpmath.isnan(want)) or got == want:
        return 0.0
    if not (mpmath.isfinite(got) and mpmath.isfinite(want)):
        return float("inf")
    return to_float(abs(got - want))


def _forward_backward(case, rounded, magnitudes=False, noise=None, trace=None, bounds=None, kinks=None):
    """(values, grads, leaf magnitudes) as mpf: the outputs, then the loss;
    d loss / d leaf after all passes; with ``magnitudes``, per leaf the sum
    over paths to it of |the product of the local derivatives| (a float),
    else None.  ``rounded`` is applied to every computed number; ``noise``,
    if given, to the op rows' formula errors (size -> a number to add).
    ``trace``, a list, gets every value of the graph and its gradient of
    one pass (None: unreached); ``bounds``, a list, the first-order bound
    of each of the returned values (_value_bounds), computed on the way
    from the partials the backward pass takes anyway, and ``kinks``, a
    _Kinks given with it, the kinks those bounds reach."""
    graph = case.graph
    n_leaves = graph.n_leaves
    values = [mpf(x) for x in case.leaves]
    negative_zero = [x == 0 and math.copysign(1.0, x) < 0 for x in case.leaves]
    signed_partials = {}  # node -> the sign rules' float64 partials, where the node meets a zero
    # With bounds, each node's partials are taken in the forward pass (its
    # values are final there) and kept for the backward one.
    kept_partials = [] if bounds is not None else None
    error = [0.0] * n_leaves if bounds is not None else None
    if bounds is not None:
        kinks.reached += [False] * n_leaves
        kinks.unknowable += [False] * n_leaves
    for i, node in enumerate(graph.nodes):
        op = OPS[node.op]
        operands = [values[a] for a in node.args]
        out = rounded(op.apply_oracle(operands, node.const))
        if noise is not None and op.formula_error is not None:
            out += noise(op.formula_errors(operands, out, node.const)[0])
        negative = False
        if _is_zero(out) or any(map(_is_zero, operands)):
            signed_out, signed_partials[i] = _float64_signs(
                op, [_signed_float(x, negative_zero[a]) for x, a in zip(operands, node.args)], node.const)
            out = _with_sign_of(out, signed_out)
            negative = _is_zero(out) and signed_out == signed_out and math.copysign(1.0, signed_out) < 0
        values.append(out)
        negative_zero.append(negative)
        if kept_partials is not None:
            partials = _partials(op, operands, out, node.const, rounded, signed_partials.get(i))
            kept_partials.append(partials)
            bound = kinks.add(node, op, operands, error)
            if bound is None:
                slopes = [1] * len(partials) if kinks.reached[-1] else partials  # CONTINUOUS_AT_KINKS
                bound = _running_error(op, operands, out, node, slopes, error)
            error.append(bound)
    loss = values[graph.outputs[0]]
    for o in graph.outputs[1:]:
        loss = rounded(loss + values[o])
    if bounds is not None:
        bounds += _output_bounds(graph, values, error)

    # Reverse mode, like torch's engine: only values that reach the loss get a
    # gradient (None: unreached), a zero upstream gradient still flows (0 *
    # inf is nan in torch too), and a value's gradient sums its consumers'
    # contributions in torch's order, the latest consumer first.
    # The loss's seed (the case's spec["gradient"], else 1) reaches each
    # output as it is: the sum's partials are 1.
    adjoint = [None] * graph.n_values
    magnitude = [0.0] * graph.n_values
    seed = _seed(case)
    for o in graph.outputs:
        adjoint[o] = mpf(seed) if adjoint[o] is None else rounded(adjoint[o] + seed)
        magnitude[o] += abs(seed)
    for i in reversed(range(graph.n_nodes)):
        node = graph.nodes[i]
        out = graph.n_leaves + i
        upstream = adjoint[out]
        if upstream is None:
            continue
        if kept_partials is not None:
            partials = kept_partials[i]
        else:
            operands = [values[a] for a in node.args]
            # Partials are float64 numbers in torch too: they overflow before the
            # upstream gradient multiplies them (0 * overflow is nan).
            op = OPS[node.op]
            partials = [None if p is None else rounded(p)
                        for p in op.oracle_partials(operands, values[out], node.const)]
            if noise is not None and op.formula_error is not None:
                errors = op.formula_errors(operands, values[out], node.const)[1]
                partials = [None if p is None else p + noise(e) for p, e in zip(partials, errors)]
            if i in signed_partials:
                partials = [None if p is None else _with_sign_of(p, t) for p, t in zip(partials, signed_partials[i])]
        for a, partial in zip(node.args, partials):
            # None: torch selects a zero here (relu's threshold_backward, pow's
            # where(exponent == 0, 0, ...)), which not even nan gets through.
            contribution = mpf(0) if partial is None else rounded(upstream * partial)
            adjoint[a] = contribution if adjoint[a] is None else rounded(adjoint[a] + contribution)
            if magnitudes and partial is not None:
                magnitude[a] += magnitude[out] * abs(float(partial))
    accumulated = 1 if case.zero_grad_between else case.passes
    if trace is not None:
        trace += [values, adjoint]
    grads = [mpf(0) if g is None else float64_range(g * accumulated) for g in adjoint[:graph.n_leaves]]
    outputs = [values[o] for o in graph.outputs]
    leaf_magnitudes = [_known_magnitude(m * accumulated) for m in magnitude[:graph.n_leaves]] if magnitudes else None
    return outputs + [loss], grads, leaf_magnitudes


_ZERO = mpf(0)._mpf_


def _is_zero(x):
    # mpf's == costs a few microseconds, and every operand of every node is asked
    parts = getattr(x, "_mpf_", None)
    return parts == _ZERO if parts is not None else x == 0


def _partials(op, operands, out, const, rounded, signs):
    """An exact run's partials of one node, as its backward pass takes them."""
    partials = [None if p is None else rounded(p) for p in op.oracle_partials(operands, out, const)]
    if signs is not None:
        partials = [None if p is None else _with_sign_of(p, t) for p, t in zip(partials, signs)]
    return partials


def _running_error(op, operands, out, node, partials, error):
    """_value_bounds' E(out) for one node, from its operands' E.  (A value
    is in float64's range, so float() of a finite one is finite.)"""
    u = UNIT_ROUNDOFF_FLOAT
    size = abs(float(out))
    if not _isfinite(size):
        return 0.0  # an infinity or a nan is one at any precision (rounding changes its class: the trials see it)
    # A float64 result is not rounded (abs(1.0), a clamp, a max): none at
    # a kink, where the bound decides whether it is reached (_Kinks).
    total = 0.0 if _is_float64(out) else u * size
    if op.formula_error is not None:
        total += u * abs(float(op.formula_errors(operands, out, node.const)[0]))
    for a, partial in zip(node.args, partials):
        if partial is not None and error[a]:
            total += abs(float(partial)) * error[a]  # an infinite partial: an infinite bound; 0 * inf: nan
    return total if total == total else math.inf


def _is_float64(x):
    """Whether a finite mpf is a float64 number (a normal one, or 0)."""
    _, man, exp, bits = x._mpf_
    return man == 0 or (bits <= FLOAT64_BITS and exp + bits > -1022)


def _output_bounds(graph, values, error):
    """_value_bounds' bounds of the outputs and the loss, from every value's E."""
    u = UNIT_ROUNDOFF_FLOAT
    outputs = [error[o] for o in graph.outputs]
    loss, partial_sum = outputs[0], values[graph.outputs[0]]
    for o in graph.outputs[1:]:
        partial_sum = partial_sum + values[o]
        loss += error[o] + (u * abs(float(partial_sum)) if mpmath.isfinite(partial_sum) else math.inf)
    return outputs + [loss if loss == loss else math.inf]


def _seed(case):
    """backward()'s gradient: the case's spec["gradient"] (a behaviour check,
    parity/cases.py), else 1.  (A case built twice, spec["rebuild"], is the
    same exact function every time: one run is all of them.)"""
    spec = getattr(case, "spec", None)
    return float(spec["gradient"]) if spec and "gradient" in spec else 1.0


def _known_magnitude(magnitude):
    # A nan magnitude (0 * inf on a path) says nothing; an infinite one,
    # that rounding can move the gradient anywhere.
    return 0.0 if magnitude != magnitude else magnitude


def _signed_float(x, negative_zero):
    return -0.0 if negative_zero else to_float(x)


def _with_sign_of(x, torch_x):
    """x, with the rule's (torch's) sign where both are infinite (a pole
    reached through a signed zero); x itself otherwise (a zero's sign is
    kept beside it)."""
    if mpmath.isinf(x) and math.isinf(torch_x):
        return mpf(torch_x)
    return x


def _float64_signs(op, operands, const):
    """The float64 value of ``op`` at ``operands`` and its partials (the
    gradient of each operand for an upstream gradient of 1), as far as
    their signs go: from the row's sign rules (signs.py), or, for a row
    without them, from torch."""
    if op.signs is not None:
        return op.signs.evaluate(operands, const)
    # Cached by the operands' hex forms: 0.0 == -0.0, and they hash alike.
    return _torch_signs(op.name, tuple(map(float.hex, operands)), const)


@functools.lru_cache(maxsize=4096)
def _torch_signs(name, operands, const):
    import torch

    leaves = [torch.tensor(float.fromhex(x), dtype=torch.float64, requires_grad=True) for x in operands]
    out = OPS[name].apply_torch(leaves, const)
    grads = torch.autograd.grad(out, leaves, allow_unused=True) if out.requires_grad else [None] * len(leaves)
    return out.item(), tuple(0.0 if g is None else g.item() for g in grads)


from . import oracle_higher  # noqa: E402  (it builds on this module's reverse pass)
