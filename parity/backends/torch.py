"""PyTorch float64 as a backend, batched over leaf draws.

Per-op overhead dominates scalar tensors, so cases that share a graph (the
same ``case.structure``, passes and zero-grad mode) run as one evaluation on
leaf tensors of shape (B,): draw b's loss depends only on draw b's leaves, so
``loss.sum().backward()`` gives every draw its own exact gradients.

Bit-for-bit like one case at a time: most CPU kernels run the same code on a
one-element tensor as on a batch, but some (``cpu_kernel_vec``) run a SIMD
lambda on full vector chunks and a scalar lambda on the rest, and a
one-element tensor is all rest.  Where the two lambdas round differently
(Sleef's pow and exp against libm's), the operands are handed to the kernel
as a non-contiguous view, which makes TensorIterator take the scalar loop for
the whole batch; backward formulas that reuse the saved input (pow's
``self.pow(exponent - 1)``) see the same view.
"""
from collections import defaultdict
from contextlib import contextmanager
import math
import operator
import time
import warnings

from ..case import DERIVATIVE_FAMILIES, Result
from ..higher_order import n_quantities
from ..sandbox.forward_mode import nested_jvp
from ..sandbox.higher_order import BackendOps, derivatives
from ..ops import OPS, Op

# Ops whose float64 CPU kernel rounds differently in its SIMD and scalar
# lambdas (pow: Sleef_pow against std::pow; sigmoid: Sleef_exp against
# std::exp; maximum: max_pd against std::max at signed zeros) say so in their
# row (``scalar_loop``).  tests/test_torch_backend.py checks every op of the
# table, so a torch release that changes a kernel shows up there.
UNIT_ROUNDOFF = 2.0 ** -53


def _torch():
    import torch  # lazily: importing torch takes seconds
    return torch


@contextmanager
def _single_threaded():
    """torch on one thread meanwhile.  The tensors here are small, a few
    above torch's grain for splitting work (the spread's), and threads that
    wait for a busy core (a sandboxed engine works beside the judge) made
    them 40x slower; the float64 results' batches, below that grain, cost
    4x the CPU time on two threads (bench/overhead.py: 256 draws of a
    200-op DAG, 107 against 26 us a case).  No result depends on the
    number of threads: each draw's numbers are computed apart."""
    torch = _torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _strided(x):
    """The same numbers as a stride-2 view, with an exact identity gradient
    (stack and select only copy)."""
    return _torch().stack((x, x.detach()), 1)[:, 0]


def _apply(op, operands, const):
    if op.scalar_loop:
        # The views are made last operand first: torch's engine runs the
        # newest ready node first, so an input that feeds both operands
        # (pow(v, v)) still sums the first operand's gradient first, as it
        # does without the views.
        operands = [_strided(x) for x in reversed(operands)][::-1]
    return op.apply_torch(operands, const)


class TorchBackend:
    name = "torch"

    @property
    def version(self):
        return _torch().__version__

    def run(self, case):
        return self.run_batch([case])[0]

    def run_batch(self, cases, dtype="float64"):
        """One Result per case, in order; cases sharing a graph run as one
        batch.  In float64, the specification; in float32, the reference for
        an engine that computes in float32 (compare.py's narrow engines)."""
        with _single_threaded():
            results = [_run_higher_order(case, dtype) if case.family == "higher_order" else
                       _run_forward(case, dtype) if case.family == "forward" else None for case in cases]
            batched = [i for i, case in enumerate(cases) if results[i] is None]  # the others run one by one
            for indices in _batches([cases[i] for i in batched]):
                for i, result in zip(indices, _run_together([cases[batched[i]] for i in indices], dtype)):
                    results[batched[i]] = result
        return results

    def rounding_spread(self, cases, trials=4, scale=2.0 ** -44, seed=0):
        """Per case, per quantity (its Result's values, then grads), how far
        float64 rounding alone can move it, estimated cheaply: a first-order
        model of what OracleBackend.spread measures exactly, for compare.judge
        to tell a grossly wrong engine from a rounding without the oracle.

        The cases' graph runs once as is and ``trials`` times with every op's
        result (as later ops and its own backward read it), every gradient
        sum, each gradient contribution of a binary op and every loss sum
        multiplied by 1 + d * s, d uniform in [-1, 1], at s =
        ``scale`` and again, same d, at 16 * scale: all in one batch.
        ``scale`` is far above float64's unit roundoff u, so the runs' own
        roundings are noise (u / scale of it), and the deviation at u is
        the deviation at s times u / s - where the model is linear, which
        is checked: the deviations at the two scales must differ by a
        factor of about 16.  A quantity is nan where they do not (a kink
        crossed, an overflow, second-order terms), where a run is not
        finite, or where the batch raised: unknown, the oracle decides."""
        # Unknown for a higher_order or forward case: the model covers one backward pass.
        estimates = [[math.nan] * (len(case.graph.outputs) + 1 + n_quantities(case))
                     if case.family in DERIVATIVE_FAMILIES else None for case in cases]
        batched = [i for i, estimate in enumerate(estimates) if estimate is None]
        with _single_threaded():
            for indices in _batches([cases[i] for i in batched]):
                together = _rounding_spread_together([cases[batched[i]] for i in indices], trials, scale, seed)
                for i, estimate in zip(indices, together):
                    estimates[batched[i]] = estimate
        return estimates

    def trace(self, case):
        """(values, grads): every value of the graph (leaves, then nodes)
        after the case's backward passes, each node's gradient kept
        (``retain_grad``) - what `parity replay` shows node by node."""
        torch = _torch()
        leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in case.leaves]
        values, loss = case.graph.evaluate(leaves, Op.apply_torch, operator.add)
        for value in values[len(leaves):]:
            if value.requires_grad:
                value.retain_grad()
        _backward_passes(case, leaves, loss)
        grads = [None if v.grad is None else v.grad.item() if v.requires_grad else 0.0 for v in values]
        return [v.item() for v in values], grads


def _batches(cases):
    """Lists of indices of cases that can run as one evaluation."""
    groups = defaultdict(list)
    for i, case in enumerate(cases):
        groups[case.structure, case.passes, case.zero_grad_between, _backward_key(case)].append(i)
    batches = []
    for indices in groups.values():
        # A structure key promises one graph; check it rather than trust it
        # (and, without a key, group the cases by graph).
        by_graph = []
        for i in indices:
            same = next((b for b in by_graph if cases[b[0]].graph == cases[i].graph), None)
            if same is None:
                by_graph.append([i])
            else:
                same.append(i)
        batches.extend(by_graph)
    return batches


def _run_together(cases, dtype="float64"):
    """Run cases with one graph, passes and zero-grad mode as one batch."""
    start = time.perf_counter()
    try:
        values, grads = _evaluate(cases, getattr(_torch(), dtype))
        results = [Result(values=v, grads=g) for v, g in zip(values, grads)]
    except Exception as exc:  # a backend reports, it does not raise
        results = [Result(error=f"{type(exc).__name__}: {exc}") for _ in cases]
    seconds = (time.perf_counter() - start) / len(cases)
    for result in results:
        result.seconds = seconds
    return results


def _evaluate(cases, dtype):
    """(values, grads) per case: of the last of a spec["rebuild"] runs, each
    on fresh leaves (ValueError if two differ; torch's never do)."""
    runs = [_evaluate_once(cases, dtype) for _ in range(_rebuilds(cases[0]))]
    for k, run in enumerate(runs[1:], 2):
        if not _same_numbers(runs[0], run):
            raise ValueError(f"{len(runs)} identical graphs (each on fresh leaves) gave different results "
                             f"(runs 1 and {k})")
    return runs[-1]


def _evaluate_once(cases, dtype):
    torch = _torch()
    first = cases[0]
    graph = first.graph
    unknown = sorted({node.op for node in graph.nodes if node.op not in OPS})
    if unknown:
        raise ValueError(f"unknown op(s): {', '.join(unknown)}")
    if any(len(case.leaves) != graph.n_leaves for case in cases):
        raise ValueError(f"the graph has {graph.n_leaves} leaves; a case gives another number")
    leaves = [torch.tensor(column, dtype=dtype, requires_grad=True)
              for column in zip(*(case.leaves for case in cases))]
    # One element takes the scalar loop anyway: no strided view needed.
    values, loss = graph.evaluate(leaves, _apply if len(cases) > 1 else Op.apply_torch, operator.add)
    _backward_passes(first, leaves, loss.sum())
    with torch.no_grad():
        outputs = torch.stack([values[o] for o in graph.outputs] + [loss], 1)
        zeros = torch.zeros(len(cases), dtype=dtype)
        grads = torch.stack([zeros if leaf.grad is None else leaf.grad for leaf in leaves], 1)
    return outputs.tolist(), grads.tolist()


def _run_higher_order(case, dtype="float64"):
    """A higher_order case's Result: torch.autograd.grad(create_graph=True)
    on its own gradients (sandbox/higher_order.py says what is asked)."""
    torch = _torch()
    start = time.perf_counter()
    try:
        leaves = [torch.tensor(x, dtype=getattr(torch, dtype), requires_grad=True) for x in case.leaves]
        values, loss = case.graph.evaluate(leaves, Op.apply_torch, operator.add)

        def differentiate(y, wrt):
            if not y.requires_grad:
                return [None] * len(wrt)
            return list(torch.autograd.grad(y, wrt, create_graph=True, allow_unused=True))

        ops = BackendOps({"mul": operator.mul, "add": operator.add, "mul_const": operator.mul}, torch.Tensor)
        first, extra = derivatives(case.spec, leaves, loss, differentiate, ops)
        result = Result(values=[values[o].item() for o in case.graph.outputs] + [loss.item()],
                        grads=[0.0 if g is None else g.item() for g in first + extra])
    except Exception as exc:  # a backend reports, it does not raise
        result = Result(error=f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


def _run_forward(case, dtype="float64"):
    """A forward case's Result: torch.func.jvp of its outputs and loss."""
    torch = _torch()
    start = time.perf_counter()
    try:
        def f(*leaves):
            values, loss = case.graph.evaluate(list(leaves), Op.apply_torch, operator.add)
            return tuple(values[o] for o in case.graph.outputs) + (loss,)

        with warnings.catch_warnings():  # torch.func's first import warns that torch.jit.script is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.func import jvp
        as_tensors = lambda xs: tuple(torch.tensor(x, dtype=getattr(torch, dtype)) for x in xs)  # noqa: E731
        if case.spec.get("nested"):
            primals, tangents = nested_jvp(jvp, *as_tensors([*case.leaves, 1.0]), operator.add, operator.mul)
        else:
            primals, tangents = jvp(f, as_tensors(case.leaves), as_tensors(case.spec["tangents"]))
        result = Result(values=[x.item() for x in primals], grads=[t.item() for t in tangents])
    except Exception as exc:  # a backend reports, it does not raise
        result = Result(error=f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


def _rounding_spread_together(cases, trials, scale, seed):
    """TorchBackend.rounding_spread for cases with one graph, passes and zero-grad mode."""
    torch = _torch()
    n, graph = len(cases), cases[0].graph
    runs = 1 + 2 * trials  # as is, then trials at scale, then the same at 16 * scale
    # Every factor at once (creating them one by one costs more than the
    # perturbed run): two per node, one per operand of a binary node, and
    # one per loss sum.
    # An op whose row has a formula_error takes one more for its value and
    # one per operand, for noise of that size.
    count = sum(2 + (len(node.args) if len(node.args) > 1 else 0)
                + (1 + len(node.args) if OPS[node.op].formula_error else 0) for node in graph.nodes) \
        + len(graph.outputs) - 1
    d = torch.rand(count, n * trials, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    size = torch.tensor([0.0] * n + [scale] * (n * trials) + [16 * scale] * (n * trials), dtype=torch.float64)
    factor = iter(1 + torch.cat((torch.zeros(count, n, dtype=torch.float64), d, d), 1) * size).__next__

    def backward_only(x):
        # x, its gradient multiplied by a factor that forward does not see.
        y = x * factor()
        y.data.copy_(x.data)
        return y

    def apply(op, operands, const):
        if len(operands) > 1:
            # Each gradient contribution of a binary op rounds on its own:
            # those that cancel exactly (v / v's two) then no longer do, as
            # in float64.  (Were the factors forward's too, the perturbed
            # graph would be another exact function, and cancel exactly.)
            operands = [backward_only(x) for x in operands]
        out = op.apply_torch(operands, const)
        # The result's rounding, in place, unseen by autograd: its own
        # backward formula (tanh's 1 - y**2) reads the rounded value, as in
        # float64.  Then a product: the gradient sum that reaches the node
        # rounds, and (harmlessly) the value the next ops read, once more.
        out.data.mul_(factor())
        if op.formula_error is not None:
            out = with_formula_noise(op, operands, out, const)
        return out * factor()

    def with_formula_noise(op, operands, out, const):
        # The row's formula_error as noise: on the value in place, on each
        # partial as x - x (zero forward) times noise that its gradient is.
        values = [x.detach() for x in operands]
        value_error, partial_errors = op.formula_errors(values, out.detach(), const)
        out.data.add_((factor() - 1) * value_error)
        for x, error in zip(operands, partial_errors):
            out = out + (x - x.detach()) * ((factor() - 1) * error)
        return out

    try:
        leaves = [torch.tensor(column * runs, dtype=torch.float64, requires_grad=True)
                  for column in zip(*(case.leaves for case in cases))]
        values, loss = graph.evaluate(leaves, apply, lambda a, b: (a + b) * factor())
        _backward_passes(cases[0], leaves, loss.sum())
        with torch.no_grad():
            zeros = torch.zeros(n * runs, dtype=torch.float64)
            quantities = torch.stack([values[o] for o in graph.outputs] + [loss]
                                     + [zeros if leaf.grad is None else leaf.grad for leaf in leaves], 1)
            as_is = torch.stack(values, 1)[:n]  # every value of the graph, unperturbed
    except Exception:  # no estimate: the oracle decides
        return [[math.nan] * (len(graph.outputs) + 1 + graph.n_leaves) for _ in cases]
    quantities = quantities.reshape(runs, n, -1)
    small, large, linear = _deviations(quantities, trials)
    finite = torch.isfinite(quantities).all(0) & torch.isfinite(small) & torch.isfinite(large)
    steady = ~_beyond_accuracy(graph, as_is)
    estimate = torch.maximum(small, large / 16) * (UNIT_ROUNDOFF / scale)
    return torch.where(finite & linear & steady, estimate, math.nan).tolist()


def _beyond_accuracy(graph, values):
    """Per case and quantity, whether torch's value of it may be off by
    more than rounding, which nothing the perturbed runs show bounds: an op
    of the graph reads an operand beyond its row's ``accurate_below`` (sin
    of 1e17), and the quantity depends on that op's result - an output
    downstream of it (and the loss), or the gradient of a leaf that reaches
    a node downstream of it (whose backward reads it).  ``values``: every
    value of the graph, per case, unperturbed."""
    torch = _torch()
    n_leaves, n_values = graph.n_leaves, graph.n_values
    limited = [(i, OPS[node.op].accurate_below) for i, node in enumerate(graph.nodes)
               if OPS[node.op].accurate_below != math.inf]
    beyond = torch.zeros(values.shape[0], len(graph.outputs) + 1 + n_leaves, dtype=torch.bool)
    if not limited:
        return beyond
    inaccurate = torch.zeros(values.shape[0], n_values, dtype=torch.bool)
    for i, limit in limited:
        for a in graph.nodes[i].args:
            inaccurate[:, n_leaves + i] |= values[:, a].abs() > limit
    # Once per pattern of inaccurate nodes: the draws of a batch mostly share one.
    patterns, which = inaccurate.unique(dim=0, return_inverse=True)
    for pattern, inaccurate_nodes in enumerate(patterns.tolist()):
        if any(inaccurate_nodes):
            beyond[which == pattern] = torch.tensor(_depends_on(graph, inaccurate_nodes))
    return beyond


def _depends_on(graph, inaccurate):
    """For _beyond_accuracy: per quantity (outputs, loss, leaves' gradients),
    whether it depends on a node of ``inaccurate`` (per value of the graph)."""
    n_leaves = graph.n_leaves
    downstream = list(inaccurate)
    for i, node in enumerate(graph.nodes):  # in topological order
        downstream[n_leaves + i] = downstream[n_leaves + i] or any(downstream[a] for a in node.args)
    reaches = [False] * graph.n_values  # reaches a downstream node
    for i in reversed(range(graph.n_nodes)):
        if downstream[n_leaves + i] or reaches[n_leaves + i]:
            for a in graph.nodes[i].args:
                reaches[a] = True
    outputs = [downstream[o] for o in graph.outputs]
    return outputs + [any(outputs)] + reaches[:n_leaves]


def _deviations(runs, trials):
    """(largest deviation at the small scale, at the large one, linear) of
    each quantity of ``runs`` (as is, trials at one scale, then at 16x).
    Linear trial by trial (each d at its two scales): the largest
    deviations of an oscillating quantity (cos of 1e75) can fall 16x apart
    by chance.  Except a minor trial, one within 1/32 of the largest
    deviation at both scales: its d nearly cancel, so each run's own
    rounding (about the estimate at u, 1/512 of the largest deviation)
    decides its ratio, and it does not set the estimate.  Were it checked,
    a case's estimate would be unknown by chance, as its batch's draws of
    d fall (expr-0-353 of the default run: 0 and 16 ulps in one of 4
    trials, in the batch of its 16 draws, and linear alone)."""
    deviation = (runs[1:] - runs[0]).abs().reshape(2, trials, *runs.shape[1:])
    small_each, large_each = deviation
    small, large = deviation.amax(1)
    minor = (small_each <= small / 32) & (large_each <= large / 32)
    linear = (minor | ((small_each == 0) & (large_each == 0))
              | ((small_each > 0) & (large_each >= 8 * small_each) & (large_each <= 32 * small_each))).all(0)
    return small, large, linear


def _backward_passes(case, leaves, loss):
    """The case's backward passes over one graph (retain_graph=True), the
    leaves' gradients cleared between them if the case says so; each seeded
    with the case's spec["gradient"] if it has one."""
    seeded = _seeded(case, loss)
    for npass in range(case.passes):
        if case.zero_grad_between and npass:
            for leaf in leaves:
                leaf.grad = None
        seeded.backward(retain_graph=True)


# -- behaviour checks (parity/cases.py's BEHAVIOURS) -------------------------------
def _backward_key(case):
    """What of a case's spec changes its backward: cases differing in it never share a batch."""
    spec = case.spec or {}
    return repr(spec.get("gradient")), spec.get("rebuild", 1)


def _seeded(case, loss):
    """What backward() is called on for ``loss`` (a scalar): ``loss``, or
    ``loss * g`` for a case seeded with spec["gradient"] g.  The product's
    backward hands ``loss`` 1 * g = g exactly, as backward(gradient=g) does,
    whatever ``loss`` is (a mul's gradient for one operand is the other);
    but a gradient tensor makes torch import sympy for its shape checks,
    0.5-1 s in every process that judged one accumulation case."""
    spec = case.spec
    if not spec or "gradient" not in spec:
        return loss
    return loss * float(spec["gradient"])


def _rebuilds(case):
    return case.spec.get("rebuild", 1) if case.spec else 1


def _same_numbers(a, b):
    """Two (values, grads) runs equal, nan equal to nan."""
    return all(len(x) == len(y) and all(p == q or (p != p and q != q) for p, q in zip(x, y))
               for rows_a, rows_b in zip(a, b) for x, y in zip(rows_a, rows_b))
