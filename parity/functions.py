"""Custom Functions: engine.Function / torch.autograd.Function pairs as ops.

Each pair computes the same thing with a hand-written backward, one
Function feature per pair: saved inputs (Square), a number argument whose
gradient is None (MulAdd), two outputs of which a graph may use one or both
(ProdSum), a non-differentiable output (ReluMask), a saved output (Exp).
Their engine sides are in parity/sandbox/engine_functions.py (the
sandboxed worker runs them); here are their torch twins and their rows of
the op table (``fn_*``) with the oracle's value and partials, so that the
function family's graphs mix them with primitive ops and every backend, the
oracle included, runs them like any op.

``check_function`` checks a user's pair: values and gradients against
torch at random points and inside small graphs, and each side's backward
against finite differences.

Importing this module registers the rows; it does not import torch (the
torch twins are built on first use).
"""
from dataclasses import dataclass
from functools import lru_cache
import inspect
import math
import random

from engine import Value
from .ops import ANY, Op, m_exp, m_relu, mpf, register_op
from .signs import Signs
from .sandbox.engine_functions import PAIRS  # noqa: F401  the engine sides (tests and users check them)


# -- the torch side: the same formulas, elementwise (the torch backend batches)
@lru_cache(maxsize=None)
def torch_functions():
    """{name: torch.autograd.Function subclass}, built on first use."""
    import torch

    class TorchSquare(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2.0 * x

    class TorchMulAdd(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, alpha):
            ctx.save_for_backward(x, y)
            return x * y + alpha

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            return g * y, g * x, None

    class TorchProdSum(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(x, y)
            return x * y, x + y

        @staticmethod
        def backward(ctx, g_prod, g_sum):
            x, y = ctx.saved_tensors
            return g_prod * y + g_sum, g_prod * x + g_sum

    class TorchReluMask(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            mask = (x > 0.0).to(x.dtype)
            ctx.save_for_backward(mask)
            ctx.mark_non_differentiable(mask)
            return x.relu(), mask

        @staticmethod
        def backward(ctx, g, g_mask):
            (mask,) = ctx.saved_tensors
            return g * mask + g_mask

    class TorchExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            result = x.exp()
            ctx.save_for_backward(result)
            return result

        @staticmethod
        def backward(ctx, g):
            (result,) = ctx.saved_tensors
            return g * result

    return {"Square": TorchSquare, "MulAdd": TorchMulAdd, "ProdSum": TorchProdSum,
            "ReluMask": TorchReluMask, "Exp": TorchExp}


def _t(name):
    return torch_functions()[name].apply


def _mask(x):
    return mpf(1) if x > 0 else mpf(0)  # nan > 0 is False, as in float64


def _torch_prodsum_both(x, y):
    product, total = _t("ProdSum")(x, y)
    return product + total


def _torch_relumask_gate(x):
    relu, mask = _t("ReluMask")(x)
    return relu * mask


_MULADD_ALPHAS = (0.5, -2.0, 0.0)

FUNCTION_OPS = tuple(register_op(op).name for op in [
    Op("fn_square", 1, lambda x: _t("Square")(x), lambda x: x * x, lambda x, out: (2 * x,),
       signs=Signs("x * x"), symbol="fn_square"),
    Op("fn_muladd", 2, lambda x, y, c: _t("MulAdd")(x, y, c), lambda x, y, c: x * y + c,
       lambda x, y, out, c: (y, x), domains=(ANY, ANY), constants=_MULADD_ALPHAS,
       signs=Signs("x * y + c"), symbol="fn_muladd"),
    # ProdSum three ways: only the product used, only the sum, both.
    Op("fn_prodsum0", 2, lambda x, y: _t("ProdSum")(x, y)[0], lambda x, y: x * y, lambda x, y, out: (y, x),
       domains=(ANY, ANY), signs=Signs("x * y"), symbol="fn_prodsum0"),
    Op("fn_prodsum1", 2, lambda x, y: _t("ProdSum")(x, y)[1], lambda x, y: x + y,
       # the product's gradient is a zero: 0 * y + 1 (nan where y is infinite), as ProdSum's backward
       lambda x, y, out: (0 * y + 1, 0 * x + 1), domains=(ANY, ANY), signs=Signs("x + y"), symbol="fn_prodsum1"),
    Op("fn_prodsum", 2, _torch_prodsum_both, lambda x, y: x * y + (x + y),
       lambda x, y, out: (y + 1, x + 1), domains=(ANY, ANY), signs=Signs("x * y + (x + y)"), symbol="fn_prodsum"),
    # ReluMask two ways: the relu output alone; relu * mask, both outputs
    # used and the mask without a gradient path.
    Op("fn_relumask", 1, lambda x: _t("ReluMask")(x)[0], m_relu, lambda x, out: (_mask(x),), kink=(0.0,),
       signs=Signs("max(x, 0)"), symbol="fn_relumask"),
    Op("fn_relumask_gate", 1, _torch_relumask_gate, lambda x: m_relu(x) * _mask(x),
       lambda x, out: (_mask(x),), kink=(0.0,), signs=Signs("max(x, 0)"), symbol="fn_relumask_gate"),
    Op("fn_exp", 1, lambda x: _t("Exp")(x), m_exp, lambda x, out: (out,), signs=Signs("1"), symbol="fn_exp"),
])


# -- check_function: is a user's pair the same function with the same backward?
@dataclass
class FunctionCheck:
    name: str
    points: list                 # the input points checked
    failures: list               # readable strings, one per disagreement

    @property
    def passed(self):
        return not self.failures

    def summary(self, limit=20):
        head = (f"check_function({self.name}): {len(self.points)} points, "
                f"{len(self.failures)} failures: {'passed' if self.passed else 'FAILED'}")
        shown = [f"  {failure}" for failure in self.failures[:limit]]
        if len(self.failures) > limit:
            shown.append(f"  ... and {len(self.failures) - limit} more")
        return "\n".join([head] + shown)

    def __str__(self):
        return self.summary()


# gradcheck's defaults: central differences with step 1e-6, |fd - grad| <= atol + rtol * |fd|.
FD_EPS, FD_ATOL, FD_RTOL = 1e-6, 1e-5, 1e-3


def check_function(engine_fn, torch_fn, n_inputs=None, domain=(-2.0, 2.0), n_cases=50, seed=0,
                   extra_args=(), rtol=1e-9, atol=1e-12):
    """Check an engine.Function against a torch.autograd.Function.

    On ``n_cases`` seeded random points of ``domain`` (away from kinks:
    points where one-sided differences disagree are redrawn), compare each
    output's value and its gradient with respect to each input, engine vs
    torch (``|e - t| <= atol + rtol * |t|``, nan equal to nan); the same in
    two small graphs that use the function between other ops; and check each
    side's backward against central finite differences (torch's with
    torch.autograd.gradcheck).  ``extra_args`` are passed after the inputs
    (numbers, like MulAdd's alpha).
    """
    n_inputs = n_inputs or _count_inputs(torch_fn, extra_args)
    engine_apply = lambda *xs: engine_fn.apply(*xs, *extra_args)  # noqa: E731
    torch_apply = lambda *xs: torch_fn.apply(*xs, *extra_args)  # noqa: E731
    points = _smooth_points(_torch_forward(torch_apply), n_inputs, domain, n_cases, seed)
    failures = []
    for x in points:
        where = f"at x={tuple(x)!r}"
        try:
            failures += _check_point(where, engine_apply, torch_apply, x, rtol, atol)
        except Exception as e:
            failures.append(f"{where}: raised {type(e).__name__}: {e}")
    return FunctionCheck(f"{engine_fn.__name__} vs {torch_fn.__name__}", points, failures)


def _check_point(where, engine_apply, torch_apply, x, rtol, atol):
    engine_values, engine_grads = _engine_jacobian(engine_apply, x)
    torch_values, torch_grads = _torch_jacobian(torch_apply, x)
    if len(engine_values) != len(torch_values):
        return [f"{where}: engine_fn returns {len(engine_values)} outputs, torch_fn {len(torch_values)}"]
    failures = []
    for k, (e, t) in enumerate(zip(engine_values, torch_values)):
        if not _close(e, t, rtol, atol):
            failures.append(f"{where}: output {k} value: engine {e!r}, torch {t!r}")
    for k, (e_row, t_row) in enumerate(zip(engine_grads, torch_grads)):
        for i, (e, t) in enumerate(zip(e_row, t_row)):
            if not _close(e, t, rtol, atol):
                failures.append(f"{where}: d output {k} / d input {i}: engine {e!r}, torch {t!r}")
    failures += _engine_finite_differences(where, engine_apply, x, engine_grads)
    failures += _torch_gradcheck(where, torch_apply, x)
    for graph in GRAPHS:
        (e_loss, e_grads), (t_loss, t_grads) = (_run_graph_engine(graph, engine_apply, x),
                                                _run_graph_torch(graph, torch_apply, x))
        if not _close(e_loss, t_loss, rtol, atol):
            failures.append(f"in graph {graph.__name__} {where}: loss: engine {e_loss!r}, torch {t_loss!r}")
        for i, (e, t) in enumerate(zip(e_grads, t_grads)):
            if not _close(e, t, rtol, atol):
                failures.append(f"in graph {graph.__name__} {where}: grad of input {i}: "
                                f"engine {e!r}, torch {t!r}")
    return failures


def _count_inputs(torch_fn, extra_args):
    params = list(inspect.signature(torch_fn.forward).parameters.values())[1:]  # after ctx
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise TypeError(f"{torch_fn.__name__}.forward takes *args: pass n_inputs")
    return len(params) - len(extra_args)


def _as_tuple(outputs):
    return outputs if isinstance(outputs, tuple) else (outputs,)


def _torch_forward(torch_apply):
    import torch

    def forward(x):
        with torch.no_grad():
            inputs = [torch.tensor(v, dtype=torch.float64) for v in x]
            return [o.item() for o in _as_tuple(torch_apply(*inputs))]
    return forward


def _smooth_points(forward, n_inputs, domain, n_cases, seed):
    """Random points where forward is finite and has no kink nearby: the
    one-sided differences agree within gradcheck's tolerance."""
    rng = random.Random(f"check_function:{seed}")
    points = []
    for _ in range(100 * n_cases):
        if len(points) == n_cases:
            break
        x = [rng.uniform(*domain) for _ in range(n_inputs)]
        if _is_smooth_at(forward, x):
            points.append(x)
    return points


def _is_smooth_at(forward, x):
    center = forward(x)
    if not all(map(math.isfinite, center)):
        return False
    for i in range(len(x)):
        ahead, behind = forward(_moved(x, i, FD_EPS)), forward(_moved(x, i, -FD_EPS))
        for f0, fa, fb in zip(center, ahead, behind):
            right, left = (fa - f0) / FD_EPS, (f0 - fb) / FD_EPS
            if not (math.isfinite(right) and math.isfinite(left)):
                return False
            if abs(right - left) > FD_ATOL + FD_RTOL * max(abs(right), abs(left)):
                return False
    return True


def _moved(x, i, step):
    return [v + step if j == i else v for j, v in enumerate(x)]


def _engine_jacobian(engine_apply, x):
    """(output values, [[d output k / d input i for i] for k]), one backward per output."""
    values, grads = None, []
    for k in range(len(_as_tuple(engine_apply(*map(Value, x))))):
        inputs = [Value(v) for v in x]
        outputs = _as_tuple(engine_apply(*inputs))
        values = [o.data for o in outputs]
        outputs[k].backward()
        grads.append([v.grad for v in inputs])
    return values, grads


def _torch_jacobian(torch_apply, x):
    import torch

    values, grads = None, []
    n_outputs = len(_as_tuple(torch_apply(*[torch.tensor(v, dtype=torch.float64) for v in x])))
    for k in range(n_outputs):
        inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in x]
        outputs = _as_tuple(torch_apply(*inputs))
        values = [o.item() for o in outputs]
        if outputs[k].requires_grad:  # a non-differentiable output: zero gradients
            outputs[k].backward()
        grads.append([0.0 if v.grad is None else v.grad.item() for v in inputs])
    return values, grads


def _engine_finite_differences(where, engine_apply, x, grads):
    def forward(point):
        return [o.data for o in _as_tuple(engine_apply(*map(Value, point)))]

    failures = []
    for i in range(len(x)):
        ahead, behind = forward(_moved(x, i, FD_EPS)), forward(_moved(x, i, -FD_EPS))
        for k, (fa, fb) in enumerate(zip(ahead, behind)):
            fd = (fa - fb) / (2 * FD_EPS)
            if not abs(grads[k][i] - fd) <= FD_ATOL + FD_RTOL * abs(fd):
                failures.append(f"{where}: engine_fn's backward disagrees with finite differences: "
                                f"d output {k} / d input {i} = {grads[k][i]!r}, finite differences {fd!r}")
    return failures


def _torch_gradcheck(where, torch_apply, x):
    import torch
    from torch.autograd.gradcheck import GradcheckError, gradcheck

    inputs = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in x)
    try:
        gradcheck(torch_apply, inputs, eps=FD_EPS, atol=FD_ATOL, rtol=FD_RTOL)
    except GradcheckError as e:
        detail = " ".join(str(e).split())
        return [f"{where}: torch_fn's backward disagrees with finite differences (gradcheck): {detail}"]
    return []


def _close(e, t, rtol, atol):
    if math.isnan(e) or math.isnan(t):
        return math.isnan(e) and math.isnan(t)
    if math.isinf(e) or math.isinf(t):
        return e == t
    return abs(e - t) <= atol + rtol * abs(t)


# Two small graphs around the function, written once for Values and tensors
# alike (operators and .tanh() only): inputs transformed before it and reused
# after it, and the function applied twice, its outputs feeding it again.
def scaled_inputs_reused(apply, xs):
    outputs = _as_tuple(apply(*[x * 1.5 - 0.25 for x in xs]))
    loss = xs[0] * outputs[0]
    for k, o in enumerate(outputs):
        loss = loss + o * (k + 0.5)
    return loss


def applied_twice(apply, xs):
    first = _as_tuple(apply(*xs))
    second = _as_tuple(apply(*[first[i % len(first)].tanh() for i in range(len(xs))]))
    loss = first[0]
    for o in first[1:] + second:
        loss = loss + o
    return loss


GRAPHS = (scaled_inputs_reused, applied_twice)


def _run_graph_engine(graph, engine_apply, x):
    inputs = [Value(v) for v in x]
    loss = graph(engine_apply, inputs)
    loss.backward()
    return loss.data, [v.grad for v in inputs]


def _run_graph_torch(graph, torch_apply, x):
    import torch

    inputs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in x]
    loss = graph(torch_apply, inputs)
    if loss.requires_grad:
        loss.backward()
    return loss.item(), [0.0 if v.grad is None else v.grad.item() for v in inputs]
