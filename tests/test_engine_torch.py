"""The engine against a live torch (float64, CPU): the DESIGN.md edge table,
a sweep of every op over special inputs and upstream gradients, backward
accumulation, Function vs torch.autograd.Function, and an MLP.
"""
import math
import operator
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from engine import Function, Value, no_grad  # noqa: E402
from engine.nn import MLP, mse_loss  # noqa: E402

F64 = torch.float64
inf, nan = math.inf, math.nan
LN2 = math.log(2.0)


def leaf(x):
    return torch.tensor(x, dtype=F64, requires_grad=True)


def agree(a, b, rel=1e-12):
    """nan == nan; infinities equal with their sign; otherwise relative tolerance."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def same_bits(a, b):
    if a != a or b != b:
        return a != a and b != b
    return struct.pack("<d", a) == struct.pack("<d", b)


def grad_of(t):
    return 0.0 if t.grad is None else t.grad.item()


def run_engine(f, inputs, g=1.0):
    leaves = [Value(x) for x in inputs]
    out = f(*leaves)
    out.backward(g)
    return out.data, tuple(v.grad for v in leaves)


def run_torch(f, inputs, g=1.0):
    leaves = [leaf(x) for x in inputs]
    out = f(*leaves)
    out.backward(torch.tensor(g, dtype=F64))
    return out.item(), tuple(grad_of(t) for t in leaves)


# --------------------------------------------------------------------------
# The DESIGN.md edge table: the table's numbers AND live torch
# --------------------------------------------------------------------------
def _pow(x, y):
    return x ** y


# (id, engine f, torch f, inputs, upstream gradient, table value or None,
#  table gradients (None where the row states no gradient for that input))
EDGE_TABLE = [
    ("relu_at_0", lambda x: x.relu(), torch.relu, (0.0,), 1.0, 0.0, (0.0,)),
    ("abs_at_0", abs, torch.abs, (0.0,), 1.0, 0.0, (0.0,)),
    ("sqrt_at_0", lambda x: x.sqrt(), torch.sqrt, (0.0,), 1.0, 0.0, (inf,)),
    ("log_at_0", lambda x: x.log(), torch.log, (0.0,), 1.0, -inf, (inf,)),
    ("log_at_minus_1", lambda x: x.log(), torch.log, (-1.0,), 1.0, nan, (-1.0,)),
    ("reciprocal_at_0", lambda x: 1 / x, lambda x: 1 / x, (0.0,), 1.0, inf, (-inf,)),
    ("exp_1000", lambda x: x.exp(), torch.exp, (1000.0,), 1.0, inf, (inf,)),
    ("tanh_plus_1000", lambda x: x.tanh(), torch.tanh, (1000.0,), 1.0, 1.0, (0.0,)),
    ("tanh_minus_1000", lambda x: x.tanh(), torch.tanh, (-1000.0,), 1.0, -1.0, (0.0,)),
    # x ** y, base gradient: where(y == 0, 0, g * y * x^(y - 1))
    ("pow_base_2_3", _pow, _pow, (2.0, 3.0), 1.0, None, (12.0, None)),
    ("pow_base_y0_g1", _pow, _pow, (0.0, 0.0), 1.0, None, (0.0, None)),
    ("pow_base_y0_gnan", _pow, _pow, (0.0, 0.0), nan, None, (0.0, None)),
    ("pow_base_y0_ginf", _pow, _pow, (5.0, 0.0), inf, None, (0.0, None)),
    ("pow_base_half", _pow, _pow, (4.0, 0.5), 2.0, None, (0.5, None)),
    ("pow_base_0_2_ginf", _pow, _pow, (0.0, 2.0), inf, None, (nan, None)),  # inf * (2 * 0)
    # x ** y, exponent gradient: g * where(x == 0 and y >= 0, 0, x^y log x)
    ("pow_exp_2_3", _pow, _pow, (2.0, 3.0), 1.0, None, (None, 8.0 * LN2)),
    ("pow_exp_x0_y1", _pow, _pow, (0.0, 1.0), 1.0, None, (None, 0.0)),
    ("pow_exp_x0_y1_gnan", _pow, _pow, (0.0, 1.0), nan, None, (None, nan)),
    ("pow_exp_x0_y1_ginf", _pow, _pow, (0.0, 1.0), inf, None, (None, nan)),
    ("pow_exp_x0_ym1", _pow, _pow, (0.0, -1.0), 1.0, None, (None, -inf)),
    ("pow_exp_negative_base", _pow, _pow, (-2.0, 2.0), 1.0, None, (None, nan)),
    ("neg2_pow_half", _pow, _pow, (-2.0, 0.5), 1.0, nan, (nan, nan)),
    ("neg2_pow_3", _pow, _pow, (-2.0, 3.0), 1.0, -8.0, (12.0, nan)),
    ("zero_pow_zero", _pow, _pow, (0.0, 0.0), 1.0, 1.0, (0.0, 0.0)),
    ("a_plus_a", lambda a: a + a, lambda a: a + a, (3.0,), 1.0, None, (2.0,)),
]


@pytest.mark.parametrize(
    "f_engine, f_torch, inputs, g, value, grads", [row[1:] for row in EDGE_TABLE], ids=[row[0] for row in EDGE_TABLE]
)
def test_edge_table(f_engine, f_torch, inputs, g, value, grads):
    e_value, e_grads = run_engine(f_engine, inputs, g)
    t_value, t_grads = run_torch(f_torch, inputs, g)
    # the table says what torch does ...
    if value is not None:
        assert agree(t_value, value), ("torch value", t_value, value)
        assert agree(e_value, value), ("engine value", e_value, value)
    for i, expected in enumerate(grads):
        if expected is not None:
            assert agree(t_grads[i], expected), ("torch grad", i, t_grads[i], expected)
            assert agree(e_grads[i], expected), ("engine grad", i, e_grads[i], expected)
    # ... and the engine agrees with torch on everything else too
    assert agree(e_value, t_value), (e_value, t_value)
    assert all(agree(a, b) for a, b in zip(e_grads, t_grads)), (e_grads, t_grads)


def test_edge_a_plus_a_has_one_node_two_edges():
    a, ta = Value(3.0), leaf(3.0)
    b, tb = a + a, ta + ta
    b.backward()
    tb.backward()
    assert b._prev == (a, a)
    assert a.grad == ta.grad.item() == 2.0


# --------------------------------------------------------------------------
# The sweep: every op over special inputs and upstream gradients
# --------------------------------------------------------------------------
SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1000.0, -1000.0,
           710.0, -745.5, 1e-300, 1e308, inf, -inf, nan]
UPSTREAM = [1.0, inf, nan, 0.0]

UNARY = {
    "neg": (operator.neg, operator.neg),
    "abs": (abs, torch.abs),
    "exp": (lambda v: v.exp(), torch.exp),
    "log": (lambda v: v.log(), torch.log),
    "tanh": (lambda v: v.tanh(), torch.tanh),
    "sigmoid": (lambda v: v.sigmoid(), torch.sigmoid),
    "relu": (lambda v: v.relu(), torch.relu),
    "sqrt": (lambda v: v.sqrt(), torch.sqrt),
}
BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "pow": operator.pow,
}
MODES = ("VV", "VN", "NV")  # which operands are Values (tensors) and which numbers


def _fmt(x):
    return repr(x)


@pytest.mark.parametrize(
    "op, x",
    [pytest.param(op, x, id=f"{op}-x={_fmt(x)}") for op in UNARY for x in SPECIAL],
)
def test_sweep_unary(op, x):
    f_engine, f_torch = UNARY[op]
    failures = []
    for g in UPSTREAM:
        e_value, (e_grad,) = run_engine(f_engine, (x,), g)
        t_value, (t_grad,) = run_torch(f_torch, (x,), g)
        if not (agree(e_value, t_value) and agree(e_grad, t_grad)):
            failures.append(f"{op}({x!r}) upstream {g!r}: engine ({e_value!r}, {e_grad!r}) torch ({t_value!r}, {t_grad!r})")
    assert not failures, "\n".join(failures)


def _binary_both(f, mode, x, y, g):
    """(engine value, engine grads, torch value, torch grads) for one case."""
    if mode == "VV":
        e = run_engine(f, (x, y), g)
        t = run_torch(f, (x, y), g)
    elif mode == "VN":
        e = run_engine(lambda a: f(a, y), (x,), g)
        t = run_torch(lambda a: f(a, y), (x,), g)
    else:
        e = run_engine(lambda b: f(x, b), (y,), g)
        t = run_torch(lambda b: f(x, b), (y,), g)
    return e, t


@pytest.mark.parametrize(
    "op, mode, x",
    [pytest.param(op, mode, x, id=f"{op}-{mode}-x={_fmt(x)}") for op in BINARY for mode in MODES for x in SPECIAL],
)
def test_sweep_binary(op, mode, x):
    f = BINARY[op]
    failures = []
    for y in SPECIAL:
        for g in UPSTREAM:
            (e_value, e_grads), (t_value, t_grads) = _binary_both(f, mode, x, y, g)
            if not (agree(e_value, t_value) and all(map(agree, e_grads, t_grads))):
                failures.append(
                    f"{op} {mode} x={x!r} y={y!r} upstream {g!r}: "
                    f"engine ({e_value!r}, {e_grads!r}) torch ({t_value!r}, {t_grads!r})"
                )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "op, mode",
    [pytest.param(op, None, id=op) for op in UNARY] + [pytest.param(op, m, id=f"{op}-{m}") for op in BINARY for m in MODES],
)
def test_signed_zero_of_values_matches_torch(op, mode):
    # torch's values keep the sign of zero (-0.0 vs 0.0), and later ops see it
    # (1 / -0.0 is -inf): forward values must match bit for bit at zeros.
    failures = []
    if mode is None:
        f_engine, f_torch = UNARY[op]
        for x in SPECIAL:
            e, t = f_engine(Value(x)).data, f_torch(leaf(x)).item()
            if e == 0.0 and t == 0.0 and not same_bits(e, t):
                failures.append(f"{op}({x!r}): engine {e!r} torch {t!r}")
    else:
        f = BINARY[op]
        for x in SPECIAL:
            for y in SPECIAL:
                a = Value(x) if mode[0] == "V" else x
                b = Value(y) if mode[1] == "V" else y
                ta = leaf(x) if mode[0] == "V" else x
                tb = leaf(y) if mode[1] == "V" else y
                e, t = f(a, b).data, f(ta, tb).item()
                if e == 0.0 and t == 0.0 and not same_bits(e, t):
                    failures.append(f"{op} {mode} x={x!r} y={y!r}: engine {e!r} torch {t!r}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------
# Accumulation: backward twice (torch: retain_graph=True)
# --------------------------------------------------------------------------
def _expression(a, b, c, lib):
    s = a * b + c  # shared below
    u = lib["tanh"](s) * a - lib["exp"](-s) / (b * b + 1.0)
    v = lib["sqrt"](abs(u) + 1.0) + lib["log"](s * s + 2.0) + 3.0 ** c - (2.0 - a) ** 2
    return u * v + s + lib["sigmoid"](v) - lib["relu"](u - s)


ENGINE_LIB = {k: (lambda name: (lambda v: getattr(v, name)()))(k) for k in ("tanh", "exp", "sqrt", "log", "sigmoid", "relu")}
TORCH_LIB = {k: getattr(torch, k) for k in ENGINE_LIB}


@pytest.mark.parametrize("inputs", [(0.3, -1.2, 0.7), (1.5, 0.25, -2.0), (-0.4, 2.0, 0.1)])
def test_backward_twice_accumulates_like_retain_graph(inputs):
    leaves = [Value(x) for x in inputs]
    tleaves = [leaf(x) for x in inputs]
    out = _expression(*leaves, ENGINE_LIB)
    tout = _expression(*tleaves, TORCH_LIB)
    assert agree(out.data, tout.item())
    tout.retain_grad()
    for upstream in (1.0, 1.0, -0.5):
        out.backward(upstream)
        tout.backward(torch.tensor(upstream, dtype=F64), retain_graph=True)
        for v, t in zip(leaves, tleaves):
            assert agree(v.grad, t.grad.item()), (v.grad, t.grad.item())
        assert out.grad == tout.grad.item()


def test_backward_twice_on_intermediate_nodes_like_retain_grad():
    a, ta = Value(0.8), leaf(0.8)
    s, ts = a * a, ta * ta
    u, tu = s.tanh() * s, torch.tanh(ts) * ts
    out, tout = u + s.exp(), tu + torch.exp(ts)
    for t in (ts, tu):
        t.retain_grad()
    for _ in range(2):
        out.backward()
        tout.backward(retain_graph=True)
        assert agree(s.grad, ts.grad.item()) and agree(u.grad, tu.grad.item())
        assert agree(a.grad, ta.grad.item())


# --------------------------------------------------------------------------
# Function vs torch.autograd.Function
# --------------------------------------------------------------------------
class EnginePair(Function):
    """(k x y, exp(x) / y) with k a number."""

    seen = []

    @staticmethod
    def forward(ctx, x, k, y):
        EnginePair.seen.append(("needs", ctx.needs_input_grad))
        ctx.save_for_backward(x, y)
        ctx.k = k
        return k * x.data * y.data, math.exp(x.data) / y.data

    @staticmethod
    def backward(ctx, g1, g2):
        EnginePair.seen.append(("grads", (g1, g2)))
        x, y = ctx.saved_tensors
        e = math.exp(x.data)
        return g1 * ctx.k * y.data + g2 * e / y.data, None, g1 * ctx.k * x.data - g2 * e / (y.data * y.data)


class TorchPair(torch.autograd.Function):
    seen = []

    @staticmethod
    def forward(ctx, x, k, y):
        TorchPair.seen.append(("needs", tuple(ctx.needs_input_grad)))
        ctx.save_for_backward(x, y)
        ctx.k = k
        return k * x * y, torch.exp(x) / y

    @staticmethod
    def backward(ctx, g1, g2):
        TorchPair.seen.append(("grads", (g1.item(), g2.item())))
        x, y = ctx.saved_tensors
        e = torch.exp(x)
        return g1 * ctx.k * y + g2 * e / y, None, g1 * ctx.k * x - g2 * e / (y * y)


LOSSES = {
    "both": lambda o1, o2: o1 * o2 + o1,
    "first_only": lambda o1, o2: o1 * 3.0,
    "second_only": lambda o1, o2: o2 * o2,
}


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("x, k, y", [(0.5, 2.0, -1.5), (-1.0, 3, 0.25)])
def test_function_matches_torch_function(loss_name, x, k, y):
    EnginePair.seen.clear()
    TorchPair.seen.clear()
    loss_f = LOSSES[loss_name]
    vx, vy = Value(x), Value(y)
    tx, ty = leaf(x), leaf(y)
    o1, o2 = EnginePair.apply(vx, k, vy)
    t1, t2 = TorchPair.apply(tx, k, ty)
    assert agree(o1.data, t1.item()) and agree(o2.data, t2.item())
    loss, tloss = loss_f(o1, o2), loss_f(t1, t2)
    for _ in range(2):  # the second pass accumulates (retain_graph)
        loss.backward()
        tloss.backward(retain_graph=True)
        assert agree(vx.grad, tx.grad.item()), (vx.grad, tx.grad.item())
        assert agree(vy.grad, ty.grad.item()), (vy.grad, ty.grad.item())
    assert EnginePair.seen[0] == TorchPair.seen[0] == ("needs", (True, False, True))
    # the unused output's gradient arrives as zero in both
    engine_grads = [s[1] for s in EnginePair.seen if s[0] == "grads"]
    torch_grads = [s[1] for s in TorchPair.seen if s[0] == "grads"]
    assert len(engine_grads) == len(torch_grads) == 2
    for eg, tg in zip(engine_grads, torch_grads):
        assert all(agree(a, b) for a, b in zip(eg, tg)), (eg, tg)


def test_function_mark_non_differentiable_matches_torch():
    received = {}

    class EngineMax(Function):
        @staticmethod
        def forward(ctx, a, b):
            idx = Value(float(a.data < b.data))
            ctx.mark_non_differentiable(idx)
            ctx.first = a.data >= b.data
            return max(a.data, b.data), idx

        @staticmethod
        def backward(ctx, g, g_idx):
            received["engine"] = (g, g_idx)
            return (g, 0.0) if ctx.first else (0.0, g)

    class TorchMax(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            idx = (a < b).to(F64)
            ctx.mark_non_differentiable(idx)
            ctx.first = bool(a >= b)
            return torch.maximum(a, b), idx

        @staticmethod
        def backward(ctx, g, g_idx):
            received["torch"] = (g.item(), g_idx.item())
            zero = torch.zeros((), dtype=F64)
            return (g, zero) if ctx.first else (zero, g)

    a, b = Value(1.0), Value(4.0)
    ta, tb = leaf(1.0), leaf(4.0)
    m, i = EngineMax.apply(a, b)
    tm, ti = TorchMax.apply(ta, tb)
    assert not ti.requires_grad and i._prev == ()
    (m * 2.0 + i).backward()
    (tm * 2.0 + ti).backward()
    assert received["engine"] == received["torch"] == (2.0, 0.0)
    assert (a.grad, b.grad) == (ta.grad.item(), tb.grad.item()) == (0.0, 2.0)


def test_wrong_gradient_count_message_matches_torch():
    class EngineWrong(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x.data * y.data

        @staticmethod
        def backward(ctx, g):
            return (g,)

    class TorchWrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return (g,)

    with pytest.raises(RuntimeError) as torch_error:
        TorchWrong.apply(leaf(1.0), leaf(2.0)).backward()
    with pytest.raises(RuntimeError) as engine_error:
        EngineWrong.apply(Value(1.0), Value(2.0)).backward()
    expected = "returned an incorrect number of gradients (expected 2, got 1)"
    assert expected in str(torch_error.value)
    assert expected in str(engine_error.value)
    assert "EngineWrongBackward" in str(engine_error.value)


def test_regression_function_needs_input_grad_under_no_grad():
    # torch sets ctx.needs_input_grad from each input's requires_grad, whatever
    # the grad mode: under torch.no_grad() it is still (True, False, True).
    # The engine reports (False, False, False) under no_grad.
    EnginePair.seen.clear()
    TorchPair.seen.clear()
    with torch.no_grad():
        TorchPair.apply(leaf(0.5), 2.0, leaf(1.5))
    with no_grad():
        EnginePair.apply(Value(0.5), 2.0, Value(1.5))
    assert TorchPair.seen[0] == ("needs", (True, False, True))
    assert EnginePair.seen[0] == TorchPair.seen[0]


# --------------------------------------------------------------------------
# MLP(3, [4, 4, 1]) against torch with the same weights
# --------------------------------------------------------------------------
XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]


def _torch_layers(model):
    layers = []
    for layer in model.layers:
        W = torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=F64, requires_grad=True)
        b = torch.tensor([n.b.data for n in layer.neurons], dtype=F64, requires_grad=True)
        layers.append((W, b))
    return layers


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_mlp_loss_and_gradients_match_torch(seed):
    model = MLP(3, [4, 4, 1], seed=seed)
    loss = mse_loss([model(x) for x in XS], YS)
    loss.backward()

    layers = _torch_layers(model)
    h = torch.tensor(XS, dtype=F64).T  # (3, batch)
    for W, b in layers:
        h = torch.tanh(W @ h + b[:, None])
    tloss = torch.nn.functional.mse_loss(h[0], torch.tensor(YS, dtype=F64))
    tloss.backward()

    assert agree(loss.data, tloss.item()), (loss.data, tloss.item())
    for layer, (W, b) in zip(model.layers, layers):
        for r, n in enumerate(layer.neurons):
            for c, w in enumerate(n.w):
                assert agree(w.grad, W.grad[r, c].item()), (w.grad, W.grad[r, c].item())
            assert agree(n.b.grad, b.grad[r].item()), (n.b.grad, b.grad[r].item())


# --------------------------------------------------------------------------
# Ordinary inputs (Hypothesis): arithmetic bit for bit, the rest within 1e-12
# --------------------------------------------------------------------------
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
nonzero = finite.filter(lambda v: abs(v) > 1e-6)
upstream = st.one_of(st.just(1.0), st.floats(-10.0, 10.0))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("mode", MODES)
@given(x=finite, y=nonzero, g=upstream)
@settings(deadline=None)  # torch's first call in a process is slow
def test_arithmetic_matches_torch_bit_for_bit(op, mode, x, y, g):
    (e_value, e_grads), (t_value, t_grads) = _binary_both(BINARY[op], mode, x, y, g)
    assert same_bits(e_value, t_value), (e_value, t_value)
    # gradients: bit for bit, except that a zero's sign is not compared (the
    # engine's .grad starts at +0.0 and accumulates, so 0.0 + -0.0 is +0.0
    # where torch assigns a leaf's first gradient as is)
    assert all(a == b or (a != a and b != b) for a, b in zip(e_grads, t_grads)), (e_grads, t_grads)


@pytest.mark.parametrize("mode", MODES)
@given(x=st.floats(1e-3, 100.0), y=st.floats(-20.0, 20.0), g=upstream)
@settings(deadline=None)  # torch's first call in a process is slow
def test_pow_matches_torch_on_ordinary_inputs(mode, x, y, g):
    (e_value, e_grads), (t_value, t_grads) = _binary_both(operator.pow, mode, x, y, g)
    assert agree(e_value, t_value), (e_value, t_value)
    assert all(map(agree, e_grads, t_grads)), (e_grads, t_grads)


UNARY_DOMAINS = {
    "neg": finite,
    "abs": finite,
    "relu": finite,
    "exp": st.floats(-700.0, 700.0),
    "log": st.floats(1e-300, 1e300),
    "sqrt": st.floats(0.0, 1e300),
    "sigmoid": st.floats(-700.0, 700.0),
    "tanh": st.floats(-30.0, 30.0),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@given(data=st.data(), g=upstream)
@settings(deadline=None)  # torch's first call in a process is slow
def test_unary_matches_torch_on_ordinary_inputs(op, data, g):
    x = data.draw(UNARY_DOMAINS[op], label="x")
    f_engine, f_torch = UNARY[op]
    e_value, (e_grad,) = run_engine(f_engine, (x,), g)
    t_value, (t_grad,) = run_torch(f_torch, (x,), g)
    assert agree(e_value, t_value), (e_value, t_value)
    if op == "tanh":
        # 1 - y * y cancels near |y| = 1: torch's kernel rounds it once (an
        # FMA on FMA hardware), the engine twice; either is within a few ulps
        # of 1 (times g) of the other.
        assert abs(e_grad - t_grad) <= 1e-12 * abs(t_grad) + 4 * 2.0 ** -53 * abs(g), (e_grad, t_grad)
    else:
        assert agree(e_grad, t_grad), (e_grad, t_grad)


# --------------------------------------------------------------------------
# The op table's rows, driven from the table: each row's facts, and each row
# at its edge points with upstream gradients 1, inf, nan and 0
# --------------------------------------------------------------------------
from parity.ops import OP_NAMES, OPS  # noqa: E402

FACTS = [(name, fact) for name in OP_NAMES for fact in OPS[name].facts]


def _row_both(op, operands, const, g):
    """(engine value, engine grads, torch value, torch grads) of one op row."""
    leaves = [Value(x) for x in operands]
    out = op.apply_engine(leaves, const)
    out.backward(g)
    tleaves = [leaf(x) for x in operands]
    tout = op.apply_torch(tleaves, const)
    tout.backward(torch.tensor(g, dtype=F64))
    return out.data, [v.grad for v in leaves], tout.item(), [grad_of(t) for t in tleaves]


@pytest.mark.parametrize("name, fact", FACTS, ids=[fact.what for _, fact in FACTS])
def test_op_row_facts_are_torch_s_and_the_engine_s(name, fact):
    e_value, e_grads, t_value, t_grads = _row_both(OPS[name], fact.operands, fact.const, 1.0)
    assert same_bits(t_value, fact.value), ("torch value", t_value, fact.value)
    assert same_bits(e_value, fact.value), ("engine value", e_value, fact.value)
    for expected, t, e in zip(fact.grads, t_grads, e_grads):
        assert agree(t, expected) and agree(e, expected), (expected, t, e)


@pytest.mark.parametrize("name", OP_NAMES)
def test_every_op_row_matches_torch_at_its_edge_points(name):
    op = OPS[name]
    points = [(x,) for x in op.edges] if op.arity == 1 else [(x, y) for x in SPECIAL for y in SPECIAL]
    failures = []
    for const in op.constants or (None,):
        for point in points:
            for g in UPSTREAM:
                e_value, e_grads, t_value, t_grads = _row_both(op, point, const, g)
                zero_signs = e_value != 0.0 or same_bits(e_value, t_value)
                if not (agree(e_value, t_value) and zero_signs and all(map(agree, e_grads, t_grads))):
                    failures.append(f"{name}(c={const!r}) at {point} upstream {g!r}: "
                                    f"engine ({e_value!r}, {e_grads!r}) torch ({t_value!r}, {t_grads!r})")
    assert not failures, "\n".join(failures[:20])
