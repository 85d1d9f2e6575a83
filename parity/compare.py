"""Comparison and verdicts: engine against torch, the oracle as referee.

Two floats match when they are the same nan/inf class (nan = nan, inf = inf
of the same sign, -0.0 = 0.0) and, when finite, |e - t| <= atol + rtol *
max(|e|, |t|).  A case whose every value and gradient matches passes.  When
some do not, the oracle is asked: its exact result, and its spread (how
far float64 rounding alone moves each quantity), give each quantity an
allowance; whichever side lies within it is right:

    engine ok, torch ok    -> ill_conditioned  (both as good as float64 allows)
    engine ok, torch off   -> torch_off
    engine off             -> fail             (whatever torch does)

The first allowance comes from the exact run's own first-order bounds
(OracleBackend.spread with 0 trials: each op's result off by up to u,
carried forward by its partials, at slope 1 through a kink it reaches,
infinite past a pole).
They settle an ill-conditioned case without a trial and never make a fail:
the trials alone can miss what they bound (expr-0-173343 in a
1,000,000-case soak: a correct engine's tanh 0.9985 ulps off, where a trial
moves the value by 0.62 ulps at most).  Then the spread is taken over
``first_spread_trials`` perturbed runs, then
over twice as many, up to ``spread_trials``, until they settle the case as
ill_conditioned, or as a fail far beyond the allowance, torch within it
(what a buggy engine's cases mostly are): ``gross_factor`` times it, or,
where torch's estimate of the spread (below) is known, ``far_factor`` times
the wider of the two allowances.  The trials are one seeded sequence (the
oracle keeps a case's: more of them cost only the new ones) and the spread
is their maximum, so more trials only widen an allowance, and the verdict
is the one all the trials give, at a third of the cost in the common case.
Two trials alone can miss a rare wide deviation by far (the 8-trial
allowance was up to 3,600 times the 2-trial one in the runs of correct
engines that round differently), but seldom together with the estimate's
four trials, which are independent of them (at most 2.8 times, in 450
quantities of those runs and of the default run of ours and of a buggy one).

Before any of that, a fail far beyond what rounding can explain is decided
without the oracle: torch's cheap estimate of the spread
(TorchBackend.rounding_spread, a first-order model checked for linearity)
suffices when the engine is more than ``gross_factor`` allowances from
torch (so at least gross_factor * rtol = 1e-10 relative) at a quantity that
torch gives as a finite nonzero number.  A buggy engine's cases are mostly
such, and the exact oracle costs about a hundred torch evaluations.

The case's verdict is the worst over its quantities.  An exact nan or
infinity must be matched by class, unless the spread is infinite (rounding
alone can change the class: anything goes).  With no oracle a mismatch is a
fail; when the oracle cannot answer (an mpmath error, no torch to sign its
zeros, a quantity a custom oracle reports as unknown), only a disagreement
beyond ``no_oracle_rtol`` fails and the rest is ill_conditioned: torch, the
spec, is then presumed right.

The reference need not be torch (backends/reference.py): with the oracle's
exact answer, rounded to float64, in torch's place (``reference="oracle"``,
a Python without torch), a case passes when the engine is within the
tolerance of it, and a mismatch is judged by the oracle's allowance as
above: ill_conditioned or fail.  torch_off cannot
occur (the reference is the exact answer), there is no screen (torch's
cheap estimate of the spread) and no float32 judgement.  The higher_order
and forward families need torch (plan.RunSpec refuses the oracle for them:
their allowance is torch's own distance from the exact value, below).

A failing case of an engine that computes in float32 is judged once more,
against torch in float32, and its detail says whether it is right to that
precision (the last section).
"""
from dataclasses import dataclass
import math
import struct
import sys
from typing import Callable

from .case import DERIVATIVE_FAMILIES
from .higher_order import derivative_names

PASS, FAIL, TORCH_OFF, ILL_CONDITIONED, ERROR, UNSUPPORTED = (
    "pass", "fail", "torch_off", "ill_conditioned", "error", "unsupported")
VERDICTS = (PASS, FAIL, TORCH_OFF, ILL_CONDITIONED, ERROR, UNSUPPORTED)
_SEVERITY = {ILL_CONDITIONED: 1, TORCH_OFF: 2, FAIL: 3}
TINY = sys.float_info.min  # smallest normal: the floor of relative errors' denominators
_isfinite = math.isfinite


@dataclass(frozen=True)
class Tolerances:
    """Every threshold of the comparison, in one place."""
    rtol: float = 1e-12
    atol: float = 1e-300
    allowance_factor: float = 16.0   # allowance = tolerance + factor * oracle spread
    spread_trials: int = 8           # perturbed oracle runs per consulted case, at most
    first_spread_trials: int = 2     # tried first: enough when both sides are within their allowance
    no_oracle_rtol: float = 1e-6     # oracle failed: disagreeing beyond this is a fail
    gross_factor: float = 100.0      # a fail this many allowances off needs no more spread trials
    far_factor: float = 16.0         # nor this many of the wider of them and the estimate's, if known
    higher_rtol: float = 1e-10       # a higher derivative's or a tangent's allowance, at least (relative)


@dataclass
class Verdict:
    verdict: str
    detail: str = ""
    max_abs_err_data: float = math.nan
    max_rel_err_data: float = math.nan
    max_ulp_data: float = math.nan
    max_abs_err_grad: float = math.nan
    max_rel_err_grad: float = math.nan
    max_ulp_grad: float = math.nan
    oracle_consulted: bool = False


# -- float comparison ----------------------------------------------------------
def same_class(a, b):
    """Whether a and b are equal as nan/inf classes: both nan, or both the same
    infinity.  (Finite pairs are compared by value.)"""
    return (a != a and b != b) or (math.isinf(a) and a == b)


def close(a, b, atol, rtol):
    if not (math.isfinite(a) and math.isfinite(b)):
        return same_class(a, b)
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def _ordered(x):
    """float64 bits as an integer that orders like the floats; -0.0 and 0.0 both 0."""
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)


def ulp_distance(a, b):
    """The number of float64 steps from a to b (0 for a match: nan and nan,
    inf and inf, 0.0 and -0.0); nan against a number is nan, an infinity
    against anything else is inf."""
    if a != a or b != b:
        return 0.0 if (a != a and b != b) else math.nan
    if a == b:
        return 0.0
    if math.isinf(a) or math.isinf(b):
        return math.inf
    return float(abs(_ordered(a) - _ordered(b)))


def errors(engine, torch):
    """(max abs, max rel, max ulp) error of engine against torch over the
    pairs where both are finite; nan when there are none."""
    # One plain loop, no temporaries: this runs twice per case on every case,
    # and most pairs are bit-identical (all three errors 0, no ULP count).
    finite = False
    max_abs = max_rel = max_ulp = 0.0
    for e, t in zip(engine, torch):
        if not (_isfinite(e) and _isfinite(t)):
            continue
        finite = True
        if e == t:
            continue
        diff = abs(e - t)
        if diff > max_abs:
            max_abs = diff
        rel = diff / max(abs(t), TINY)
        if rel > max_rel:
            max_rel = rel
        ulps = ulp_distance(e, t)
        if ulps > max_ulp:
            max_ulp = ulps
    if not finite:
        return math.nan, math.nan, math.nan
    return max_abs, max_rel, max_ulp


# -- verdicts ------------------------------------------------------------------
def quantity_names(case, n_values, n_grads):
    """Names of the quantities of a Result, in order: values, then grads
    (a higher_order case's higher derivatives after the leaves')."""
    outputs = case.graph.outputs
    if n_values == len(outputs) + 1:
        names = [f"value of output v{o}" for o in outputs] + ["loss"]
    else:
        names = [f"value {i}" for i in range(n_values)]
    n_leaves = 0 if case.family == "forward" else min(n_grads, case.graph.n_leaves)
    return names + [f"grad of leaf v{i}" for i in range(n_leaves)] + derivative_names(case)[:n_grads - n_leaves]


@dataclass(frozen=True)
class TorchExtras:
    """What judge may ask torch beyond the case's float64 result, each
    computed only when asked (most cases never need them)."""
    rounding_spread: Callable = None  # () -> the estimated spread per quantity, nan: unknown
    float32: Callable = None          # () -> the case's Result in float32


def judge(case, engine_result, torch_result, oracle=None, tolerances=Tolerances(), extras=TorchExtras(),
          reference="torch"):
    """The Verdict on engine_result against torch_result for case.
    ``reference`` names what torch_result is (backends/reference.py):
    torch's float64 result, or the oracle's exact one rounded (then the
    oracle's spread decides every mismatch, and torch_off cannot occur)."""
    rounding_spread = extras.rounding_spread
    for who, result in (("engine", engine_result), (reference, torch_result)):
        if result.unsupported:
            return Verdict(UNSUPPORTED, f"{who} lacks {result.unsupported}")
    if engine_result.error:
        return Verdict(ERROR, engine_result.error)
    if torch_result.error:
        error = torch_result.error
        return Verdict(ERROR, error if error.startswith(f"{reference}:") else f"{reference}: {error}")
    shape = (len(engine_result.values), len(engine_result.grads))
    torch_shape = (len(torch_result.values), len(torch_result.grads))
    if shape != torch_shape:
        return Verdict(ERROR, f"engine gave {shape[0]} values and {shape[1]} grads, "
                              f"{reference} {torch_shape[0]} and {torch_shape[1]}")

    verdict = Verdict(PASS)
    (verdict.max_abs_err_data, verdict.max_rel_err_data,
     verdict.max_ulp_data) = errors(engine_result.values, torch_result.values)
    (verdict.max_abs_err_grad, verdict.max_rel_err_grad,
     verdict.max_ulp_grad) = errors(engine_result.grads, torch_result.grads)

    engine = engine_result.values + engine_result.grads
    torch = torch_result.values + torch_result.grads
    tol = tolerances
    # ``e == t`` first: equal numbers are always close, and most pairs are.
    mismatches = [i for i, (e, t) in enumerate(zip(engine, torch))
                  if not (e == t or close(e, t, tol.atol, tol.rtol))]
    if not mismatches:
        return verdict
    names = quantity_names(case, *shape)
    first = mismatches[0]
    more = f" (+{len(mismatches) - 1} more mismatches)" if len(mismatches) > 1 else ""
    if oracle is None:
        verdict.verdict = FAIL
        verdict.detail = f"{names[first]}: engine {engine[first]!r}, {reference} {torch[first]!r}; no oracle{more}"
        return verdict

    estimate = [math.nan] * len(engine) if rounding_spread is None else rounding_spread()
    if any(_beyond_rounding(engine[i], torch[i], estimate[i], tol.gross_factor, tol) for i in mismatches):
        # Named: the first quantity outside its allowance, a value before
        # the gradients it spoils (a forward bug shows as a value).
        first = next(i for i in mismatches if _beyond_rounding(engine[i], torch[i], estimate[i], 1, tol))
        verdict.verdict = FAIL
        verdict.detail = (f"{names[first]}: engine {engine[first]!r}, {reference} {torch[first]!r}; "
                          f"beyond any rounding (estimated spread {estimate[first]:.3g}){more}")
        verdict.detail = _narrow_detail(verdict.detail, names, engine, torch, mismatches, extras, tol)
        return verdict

    verdict.oracle_consulted = True
    # A few spread trials first: an allowance only grows with more of them,
    # so if both sides are already within it everywhere (ill_conditioned, by
    # far the commonest outcome), all the trials would say the same.
    # And a fail far outside it (torch within it: a buggy engine's usual
    # case) is not undone by trials that widen it a few times: the rest are
    # saved.
    for trials in _trial_rounds(tol):
        exact, allowance, no_opinion_reason = _consult(oracle, case, len(engine), tol, trials)
        allowance = _at_least_torchs_error(case, allowance, torch, exact, tol)
        judged = [(i, *_judge_quantity(engine[i], torch[i], exact[i], allowance[i], no_opinion_reason, tol))
                  for i in mismatches]
        if trials == 0:  # the first-order bounds: they settle an ill-conditioned case, never a fail
            if all(j[1] == ILL_CONDITIONED for j in judged):
                break
            continue
        if all(j[1] == ILL_CONDITIONED for j in judged) or any(
                _far_off(engine[i], torch[i], exact[i], allowance[i], estimate[i], tol) for i in mismatches):
            break
    worst, verdict.verdict, note = max(judged, key=lambda j: _SEVERITY[j[1]])  # the first of the worst
    if reference == "oracle":  # the reference is the oracle's exact answer: one number, not two
        note = note.replace(f", oracle {exact[worst]!r} (", " (", 1)
    verdict.detail = f"{names[worst]}: engine {engine[worst]!r}, {reference} {torch[worst]!r}{note}{more}"
    if verdict.verdict == FAIL:
        verdict.detail = _narrow_detail(verdict.detail, names, engine, torch, mismatches, extras, tol)
    return verdict


def _beyond_rounding(engine, torch, spread, allowances, tol):
    """The engine more than ``allowances`` allowances of the estimated
    spread from torch's finite, nonzero value (gross_factor of them: no
    rounding of either explains it)."""
    if not (torch != 0 and _isfinite(torch) and _isfinite(engine) and _isfinite(spread)):
        return False
    allowance = tol.atol + tol.rtol * abs(torch) + tol.allowance_factor * spread
    return abs(engine - torch) > allowances * allowance


def _trial_rounds(tol):
    """The numbers of spread trials to try in turn: 0 (the oracle's
    first-order bounds from its exact run: OracleBackend.spread), then
    first_spread_trials, doubling, up to spread_trials."""
    yield 0
    trials = tol.first_spread_trials
    while trials < tol.spread_trials:
        yield trials
        trials = max(2 * trials, 1)
    yield tol.spread_trials


def _far_off(engine, torch, exact, allowance, estimate, tol):
    """The engine so far from a finite exact answer that torch is within
    that more spread trials would not undo the fail: beyond gross_factor
    allowances of the trials so far, or, where torch's estimate of the
    spread is known, beyond far_factor times the wider of that allowance
    and the estimate's (the module doc)."""
    # Not at an exact zero: a cancellation, which two trials may well leave
    # exactly 0 and a differently rounding engine does not; nor where the
    # engine's value is not finite: a rounding that changes a quantity's
    # class (to nan, to inf) shows in some trials only.
    if exact == 0 or not (math.isfinite(exact) and math.isfinite(allowance) and math.isfinite(engine)):
        return False
    if not near(torch, exact, allowance):
        return False
    if not _isfinite(estimate):
        return not near(engine, exact, tol.gross_factor * allowance)
    estimated = tol.atol + tol.rtol * abs(exact) + tol.allowance_factor * estimate
    return not near(engine, exact, tol.far_factor * max(allowance, estimated))


def _judge_quantity(engine, torch, exact, allowance, no_opinion_reason, tol):
    """(verdict, detail note) for one mismatching quantity."""
    if math.isnan(allowance):
        # No referee: only a disagreement far beyond rounding is a fail.
        far = not close(engine, torch, tol.atol, tol.no_oracle_rtol)
        return FAIL if far else ILL_CONDITIONED, f"; no oracle opinion ({no_opinion_reason})"
    engine_ok = near(engine, exact, allowance)
    torch_ok = near(torch, exact, allowance)
    note = f", oracle {exact!r} (allowance {allowance:.3g})"
    if engine_ok:
        return (ILL_CONDITIONED if torch_ok else TORCH_OFF), note
    return FAIL, note + ("" if torch_ok else "; torch is off too")


def near(x, exact, allowance):
    """Whether x is within allowance of the oracle's exact value.  An exact
    nan or infinity must be matched by class, unless the allowance is
    infinite: float64 rounding alone can change the quantity's class."""
    if allowance == math.inf:
        return True
    if not math.isfinite(exact):
        return same_class(x, exact)
    return x == x and abs(x - exact) <= allowance


def _at_least_torchs_error(case, allowance, torch, exact, tol):
    """The allowances, a higher derivative's (or a JVP's) widened to
    allowance_factor times torch's own distance from the exact value, and
    to higher_rtol of it.  The oracle's trials perturb the forward pass and
    the first backward pass, not the second one's own arithmetic, where the
    terms of a second derivative can cancel (a tanh of a tanh: torch and a
    correct engine both 1e-9 relative off, the trials' spread a thousandth
    of that).  torch is a correct float64 evaluation, so its error measures
    what rounding does to the quantity - as far as its luck goes: an engine
    that forms the terms otherwise (value_grads.py: 1.4e-12 relative off,
    torch 3e-14, higher_order-1-1519) rounds them otherwise; hence the
    relative floor, 450,000 ulps, which a wrong formula (1e-7 relative off
    and more) still exceeds.  Where the terms cancel to an exact 0 (a third
    derivative of a polynomial), no relative floor helps: an engine leaves
    ulps of its terms (value_grads.py: 1.8e-15, higher_order-2-1688): the
    oracle's spread of these quantities is at least u times the case's
    largest derivative (oracle.py).  torch_off cannot be a higher
    derivative's verdict."""
    if case.family not in DERIVATIVE_FAMILIES:
        return allowance
    first = len(allowance) - len(derivative_names(case))
    return [a if i < first or not (math.isfinite(t) and math.isfinite(x)) or a != a else
            max(a, tol.allowance_factor * abs(t - x), tol.atol + tol.higher_rtol * abs(x))
            for i, (a, t, x) in enumerate(zip(allowance, torch, exact))]


def _consult(oracle, case, n, tol, trials):
    """(exact quantities, allowances, why there is no opinion) for the n
    quantities of the case, the spread taken over ``trials`` trials.  An allowance is nan where the oracle has no
    opinion: everywhere if it raised or erred, where its spread is nan (a
    quantity it says it cannot know)."""
    unknown = [math.nan] * n
    try:
        exact_result = oracle.run(case)
        if exact_result.error:
            return unknown, unknown, exact_result.error
        value_spread, grad_spread = oracle.spread(case, trials=trials)
    except Exception as exc:  # the referee failing is no verdict on the players
        return unknown, unknown, f"oracle: {type(exc).__name__}: {exc}"
    exact = exact_result.values + exact_result.grads
    spread = value_spread + grad_spread
    if not len(exact) == len(spread) == n:
        return unknown, unknown, f"oracle: {len(exact)} quantities and {len(spread)} spreads, not {n}"
    allowance = [tol.atol + tol.rtol * abs(x) + tol.allowance_factor * s if math.isfinite(x) else s
                 for x, s in zip(exact, spread)]
    return exact, allowance, "the oracle cannot know this quantity"


# -- engines of a narrower precision ------------------------------------------------
# An engine computing in float32 (numpy scalars, a port of a float32 library)
# fails everywhere at float64's precision.  Its results say so: no number
# has more significant bits than float32's 24.  A failing case of such an
# engine is judged again at that precision - against torch in float32,
# which rounds its leaves and every op as the engine does, within the
# allowance scaled by the ratio of the unit roundoffs - and its detail says
# how it fares there, for the diagnosis's `precision` finding.
NARROW = "computes in float32 (at most 24-bit significands)"
WITHIN_NARROW, BEYOND_NARROW = "within that precision", "beyond that precision too"
FLOAT32_BITS = 24


def significant_bits(values, enough=math.inf):
    """The most significant bits any finite nonzero value needs (its
    binary significand, trailing zeros dropped); 0 if there is none.  Or
    the first count beyond ``enough``: more are not wanted."""
    bits = 0
    for x in values:
        if x and _isfinite(x):
            numerator = abs(x.as_integer_ratio()[0])
            bits = max(bits, (numerator >> ((numerator & -numerator).bit_length() - 1)).bit_length())
            if bits > enough:
                break
    return bits


def is_narrow(engine, torch):
    """Whether the engine's numbers are float32's (or narrower) where
    torch's float64 ones need more bits."""
    # Asked of every failing case, of hundreds of numbers (a graph's every
    # output): a float64 engine's first long number settles it.
    return 0 < significant_bits(engine, FLOAT32_BITS) <= FLOAT32_BITS < significant_bits(torch, FLOAT32_BITS)


def _narrow_detail(detail, names, engine, torch, mismatches, extras, tol):
    """A failing case's detail, for a narrow engine: as it is, then "within
    that precision"; or "beyond that precision too", naming the first
    quantity beyond it (a wrong gradient, not the value float32 rounds)."""
    if extras.float32 is None or extras.rounding_spread is None or not is_narrow(engine, torch):
        return detail
    reference = extras.float32()
    if not reference.ok:
        return detail
    spread = extras.rounding_spread()
    reference = reference.values + reference.grads
    scale = 2.0 ** (53 - FLOAT32_BITS)
    beyond = [i for i in mismatches if not _within_narrow(engine[i], reference[i], spread[i], scale, tol)]
    if not beyond:
        return f"{detail}; the engine {NARROW}: {WITHIN_NARROW}"
    i = beyond[0]
    return (f"{names[i]}: engine {engine[i]!r}, torch {torch[i]!r}, torch in float32 {reference[i]!r}; "
            f"the engine {NARROW}: {BEYOND_NARROW}")


def _within_narrow(engine, reference, spread, scale, tol):
    if not (_isfinite(engine) and _isfinite(reference)):
        return engine == reference or same_class(engine, reference)
    # No estimate (not linear at float64's scale): the tolerance alone, scaled.
    spread = spread if _isfinite(spread) else 0.0
    allowance = tol.atol + tol.rtol * abs(reference) + tol.allowance_factor * spread
    return abs(engine - reference) <= allowance * scale
