"""Function: the torch.autograd.Function mirror."""
import math
import re
import weakref

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Function, FunctionCtx, Value, is_grad_enabled, no_grad, topological_order


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.data ** 2

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_values
        return grad_output * 2 * x.data


class Recorder(Function):
    """Scale x by k (a number) and y by nothing: (k * x * y, x + y).

    Records every ctx and every backward call's grad_outputs.
    """

    calls = []
    contexts = []

    @staticmethod
    def forward(ctx, x, k, y):
        Recorder.contexts.append(ctx)
        ctx.save_for_backward(x, y)
        ctx.k = k
        ctx.forward_grad_enabled = is_grad_enabled()
        return Value(k * x.data * y.data), x.data + y.data

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        Recorder.calls.append((g_prod, g_sum))
        ctx.backward_grad_enabled = is_grad_enabled()
        x, y = ctx.saved_tensors
        k = ctx.k
        return g_prod * k * y.data + g_sum, None, g_prod * k * x.data + g_sum


def fresh_recorder():
    Recorder.calls.clear()
    Recorder.contexts.clear()


def test_docstring_square():
    x = Value(3.0)
    y = Square.apply(x)
    assert isinstance(y, Value) and y.data == 9.0
    y.backward()
    assert x.grad == 6.0


@given(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(-10, 10))
def test_recorder_gradients_hand_derived(x0, y0, k):
    x, y = Value(x0), Value(y0)
    prod, total = Recorder.apply(x, k, y)
    out = prod * 2.0 + total * 3.0
    out.backward()
    assert prod.data == k * x0 * y0
    assert total.data == x0 + y0
    assert Recorder.calls[-1] == (2.0, 3.0)
    assert x.grad == 2.0 * k * y0 + 3.0
    assert y.grad == 2.0 * k * x0 + 3.0


# --------------------------------------------------------------------------
# ctx
# --------------------------------------------------------------------------
def test_save_for_backward_saved_values_and_saved_tensors_alias():
    fresh_recorder()
    x, y = Value(2.0), Value(5.0)
    Recorder.apply(x, 3, y)
    ctx = Recorder.contexts[-1]
    assert isinstance(ctx, FunctionCtx)
    assert ctx.saved_values == (x, y)
    assert ctx.saved_values[0] is x and ctx.saved_values[1] is y
    assert ctx.saved_tensors is ctx.saved_values


def test_saved_values_default_empty_and_none_allowed():
    seen = {}

    class SaveNone(Function):
        @staticmethod
        def forward(ctx, x):
            seen["before"] = ctx.saved_values
            ctx.save_for_backward(None, x)
            return x.data

        @staticmethod
        def backward(ctx, g):
            none, x = ctx.saved_values
            assert none is None
            return g

    x = Value(1.0)
    SaveNone.apply(x).backward()
    assert seen["before"] == ()
    assert x.grad == 1.0


def test_save_for_backward_twice_raises():
    class SaveTwice(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            ctx.save_for_backward(x)
            return x.data

    with pytest.raises(RuntimeError, match="once"):
        SaveTwice.apply(Value(1.0))


def test_save_for_backward_rejects_numbers():
    class SaveNumber(Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x, k)
            return x.data

    with pytest.raises(TypeError, match="float"):
        SaveNumber.apply(Value(1.0), 2.0)


def test_needs_input_grad_is_tuple_of_bools():
    captured = {}

    class Capture(Function):
        @staticmethod
        def forward(ctx, a, b, c, d, e):
            captured["forward"] = ctx.needs_input_grad
            return a.data + c.data

        @staticmethod
        def backward(ctx, g):
            captured["backward"] = ctx.needs_input_grad
            return g, None, g, None, None

    a, c = Value(1.0), Value(2.0)
    Capture.apply(a, 2.0, c, 3, True).backward()
    expected = (True, False, True, False, False)
    assert captured["forward"] == expected
    assert captured["backward"] == expected
    assert type(captured["forward"]) is tuple
    assert all(type(flag) is bool for flag in captured["forward"])
    assert a.grad == 1.0 and c.grad == 1.0


def test_forward_and_backward_run_without_graph_recording():
    fresh_recorder()
    x, y = Value(2.0), Value(3.0)
    prod, _ = Recorder.apply(x, 1.5, y)
    prod.backward()
    ctx = Recorder.contexts[-1]
    assert ctx.forward_grad_enabled is False
    assert ctx.backward_grad_enabled is False
    assert is_grad_enabled()

    class GraphInside(Function):
        @staticmethod
        def forward(ctx, v):
            inner = v * v + 1.0  # must not be recorded
            ctx.inner = inner
            return inner

        @staticmethod
        def backward(ctx, g):
            return g * 2.0 * ctx.inner.data

    v = Value(2.0)
    out = GraphInside.apply(v)
    assert out.data == 5.0
    order = topological_order(out)
    assert len(order) == 3 and order[0] is v  # v -> hidden node -> out: nothing from the forward
    assert out.__class__ is Value and v.grad == 0.0
    out.backward()
    assert v.grad == 10.0


# --------------------------------------------------------------------------
# Numbers as arguments
# --------------------------------------------------------------------------
def test_number_arguments_pass_through_and_take_none():
    seen = {}

    class Scale(Function):
        @staticmethod
        def forward(ctx, x, k):
            seen["k"] = k
            ctx.k = k
            return x.data * k

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, None

    k = 7  # an int stays the very object passed
    x = Value(2.0)
    out = Scale.apply(x, k)
    assert seen["k"] is k
    assert out.data == 14.0
    out.backward()
    assert x.grad == 7.0


def test_non_none_gradient_for_a_number_input_raises():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x, k):
            return x.data * k

        @staticmethod
        def backward(ctx, g):
            return g, 0.0

    out = Bad.apply(Value(2.0), 3.0)
    with pytest.raises(RuntimeError) as excinfo:
        out.backward()
    message = str(excinfo.value)
    assert "BadBackward" in message
    assert "position 2" in message


@pytest.mark.parametrize("returned, got", [((1.0,), 1), ((1.0, None, 2.0, 3.0), 4), (5.0, 1)])
def test_wrong_gradient_count_raises(returned, got):
    class Wrong(Function):
        @staticmethod
        def forward(ctx, x, k, y):
            return x.data + k + y.data

        @staticmethod
        def backward(ctx, g):
            return returned

    out = Wrong.apply(Value(1.0), 2.0, Value(3.0))
    expected = (
        f"function WrongBackward returned an incorrect number of gradients (expected 3, got {got})"
    )
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        out.backward()


def test_single_gradient_may_be_returned_bare_or_as_value():
    class AsValue(Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 3.0

        @staticmethod
        def backward(ctx, g):
            return Value(g * 3.0)

    x = Value(1.0)
    AsValue.apply(x).backward(2.0)
    assert x.grad == 6.0


def test_function_with_only_number_arguments_returns_constants():
    class Const(Function):
        @staticmethod
        def forward(ctx, a, b):
            assert ctx.needs_input_grad == (False, False)
            return a + b, a * b

    s, p = Const.apply(2, 3.5)
    assert (s.data, p.data) == (5.5, 7.0)
    assert s._prev == () and p._prev == ()
    assert type(s.data) is float


def test_forward_must_return_values_or_numbers():
    class ReturnsString(Function):
        @staticmethod
        def forward(ctx, x):
            return "x"

    with pytest.raises(TypeError, match="ReturnsString"):
        ReturnsString.apply(Value(1.0))


def test_base_function_forward_and_backward_are_abstract():
    with pytest.raises(NotImplementedError):
        Function.apply(Value(1.0))

    class NoBackward(Function):
        @staticmethod
        def forward(ctx, x):
            return x.data

    out = NoBackward.apply(Value(1.0))
    with pytest.raises(NotImplementedError):
        out.backward()


# --------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------
def test_mark_non_differentiable_outputs_are_constants_but_backward_gets_zero():
    received = []

    class ArgMaxAndMax(Function):
        @staticmethod
        def forward(ctx, a, b):
            index = Value(0.0 if a.data >= b.data else 1.0)
            ctx.mark_non_differentiable(index)
            ctx.a_wins = a.data >= b.data
            return max(a.data, b.data), index

        @staticmethod
        def backward(ctx, g_max, g_index):
            received.append((g_max, g_index))
            return (g_max, 0.0) if ctx.a_wins else (0.0, g_max)

    a, b = Value(1.0), Value(4.0)
    best, index = ArgMaxAndMax.apply(a, b)
    assert index.data == 1.0
    assert index._prev == () and index._backward is None  # a constant
    out = best * 2.0 + index * 10.0
    out.backward()
    assert received == [(2.0, 0.0)]
    assert a.grad == 0.0 and b.grad == 2.0
    assert index.grad == 10.0  # its own .grad is filled, it just leads nowhere


def test_unused_output_gets_zero_grad_output():
    fresh_recorder()
    x, y = Value(2.0), Value(3.0)
    prod, total = Recorder.apply(x, 1.0, y)
    prod.backward()
    assert Recorder.calls == [(1.0, 0.0)]
    assert x.grad == 3.0 and y.grad == 2.0
    x.grad = y.grad = 0.0
    total.backward()  # the other output alone, through the same hidden node
    assert Recorder.calls[-1] == (0.0, 1.0)
    assert x.grad == 1.0 and y.grad == 1.0


def test_outputs_are_new_values_and_floats():
    class Identity(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g

    class IntOut(Function):
        @staticmethod
        def forward(ctx, x):
            return 3

        @staticmethod
        def backward(ctx, g):
            return 0.0

    x = Value(2.0)
    y = Identity.apply(x)
    assert y is not x and y.data == 2.0
    (y * 4.0).backward()
    assert x.grad == 4.0
    z = IntOut.apply(x)
    assert type(z.data) is float and z.data == 3.0


def test_function_used_twice_in_one_graph():
    x = Value(3.0)
    a = Square.apply(x)
    b = Square.apply(x)
    c = Square.apply(a)  # x ** 4 through two applications in a chain
    out = a + b + c
    out.backward()
    assert out.data == 9.0 + 9.0 + 81.0
    assert x.grad == 6.0 + 6.0 + 4 * 27.0


def test_same_value_passed_twice():
    x = Value(3.0)
    prod, total = Recorder.apply(x, 1.0, x)  # x * x and x + x
    (prod + total).backward()
    assert prod.data == 9.0 and total.data == 6.0
    assert x.grad == (3.0 + 1.0) + (3.0 + 1.0)


def test_function_inside_no_grad_records_nothing():
    fresh_recorder()
    x, y = Value(2.0), Value(3.0)
    with no_grad():
        prod, total = Recorder.apply(x, 2.0, y)
    assert prod.data == 12.0 and total.data == 5.0
    assert prod._prev == () and total._prev == ()
    ctx = Recorder.contexts[-1]
    # torch derives needs_input_grad from the inputs, whatever the grad mode
    assert ctx.needs_input_grad == (True, False, True)
    (prod + total).backward()
    assert Recorder.calls == []
    assert x.grad == 0.0 and y.grad == 0.0


def test_two_backward_passes_accumulate_and_reset_slots():
    fresh_recorder()
    x, y = Value(2.0), Value(-1.5)
    prod, total = Recorder.apply(x, 3.0, y)
    out = prod * 0.5 + total * total
    out.backward()
    first = (x.grad, y.grad)
    assert first == (0.5 * 3.0 * -1.5 + 2 * 0.5, 0.5 * 3.0 * 2.0 + 2 * 0.5)
    out.backward()
    assert (x.grad, y.grad) == (2 * first[0], 2 * first[1])
    # each pass's backward saw that pass's gradients only
    assert Recorder.calls == [(0.5, 1.0), (0.5, 1.0)]
    out.backward(-2.0)
    assert Recorder.calls[-1] == (-1.0, -2.0)
    assert (x.grad, y.grad) == (0.0, 0.0)


def test_hidden_node_is_freed_with_its_outputs():
    fresh_recorder()
    import gc

    x = Value(2.0)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        prod, total = Recorder.apply(x, 1.0, Value(1.0))
        hidden = weakref.ref(prod._prev[0])
        ctx = weakref.ref(Recorder.contexts.pop())
        del prod, total
        assert hidden() is None and ctx() is None
    finally:
        if was_enabled:
            gc.enable()
    assert math.isfinite(x.data)
