"""engine.nn: Neuron, Layer, MLP, mse_loss, SGD."""
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Value, no_grad
from engine.nn import MLP, SGD, Layer, Module, Neuron, mse_loss

XS = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
YS = [1.0, -1.0, -1.0, 1.0]


def data(params):
    return [p.data for p in params]


# --------------------------------------------------------------------------
# Shapes and parameters
# --------------------------------------------------------------------------
def test_neuron_parameters_weights_then_bias():
    n = Neuron(3, seed=0)
    params = n.parameters()
    assert len(params) == 4
    assert params[:3] == n.w and params[3] is n.b
    assert all(isinstance(p, Value) for p in params)


def test_layer_parameters_neuron_by_neuron():
    layer = Layer(3, 2, seed=0)
    assert len(layer.neurons) == 2
    params = layer.parameters()
    assert len(params) == 8
    expected = layer.neurons[0].w + [layer.neurons[0].b] + layer.neurons[1].w + [layer.neurons[1].b]
    assert all(p is q for p, q in zip(params, expected))


def test_mlp_parameters_layer_by_layer():
    model = MLP(3, [4, 4, 1], seed=0)
    assert [len(layer.neurons) for layer in model.layers] == [4, 4, 1]
    assert [len(layer.neurons[0].w) for layer in model.layers] == [3, 4, 4]
    params = model.parameters()
    assert len(params) == 4 * 4 + 4 * 5 + 1 * 5 == 41
    expected = [p for layer in model.layers for n in layer.neurons for p in n.w + [n.b]]
    assert all(p is q for p, q in zip(params, expected))
    assert len({id(p) for p in params}) == 41


@given(st.integers(1, 5), st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(0, 2**32))
def test_mlp_shapes(nin, nouts, seed):
    model = MLP(nin, nouts, seed=seed)
    expected = sum((a + 1) * b for a, b in zip([nin] + nouts, nouts))
    assert len(model.parameters()) == expected
    out = model([0.5] * nin)
    if nouts[-1] == 1:
        assert isinstance(out, Value)
    else:
        assert isinstance(out, list) and len(out) == nouts[-1]
        assert all(isinstance(o, Value) for o in out)


def test_layer_with_one_neuron_returns_a_value():
    assert isinstance(Layer(2, 1, seed=0)([1.0, 2.0]), Value)
    outs = Layer(2, 3, seed=0)([1.0, 2.0])
    assert isinstance(outs, list) and len(outs) == 3


def test_mlp_accepts_a_bare_number_for_one_input():
    model = MLP(1, [2, 1], seed=3)
    assert model(0.5).data == model([0.5]).data


@given(st.integers(0, 2**32), st.integers(1, 6))
def test_weights_in_minus_one_one(seed, nin):
    model = MLP(nin, [3, 2], seed=seed)
    assert all(-1.0 <= p.data <= 1.0 for p in model.parameters())
    assert all(-1.0 <= p.data <= 1.0 for p in Neuron(nin, seed=seed).parameters())


def test_same_seed_same_parameters_different_seed_different():
    a = data(MLP(3, [4, 4, 1], seed=42).parameters())
    b = data(MLP(3, [4, 4, 1], seed=42).parameters())
    c = data(MLP(3, [4, 4, 1], seed=43).parameters())
    assert a == b
    assert a != c
    assert data(Neuron(3, seed=1).parameters()) == data(Neuron(3, seed=1).parameters())
    assert data(Layer(3, 2, seed=1).parameters()) != data(Layer(3, 2, seed=2).parameters())


def test_rng_argument_matches_seed():
    assert data(MLP(3, [4, 1], rng=random.Random(7)).parameters()) == data(MLP(3, [4, 1], seed=7).parameters())
    rng = random.Random(7)
    first = Neuron(2, rng=rng)
    second = Neuron(2, rng=rng)  # the shared rng moved on
    assert data(first.parameters()) != data(second.parameters())


@pytest.mark.parametrize(
    "make",
    [
        lambda: Neuron(2, seed=0, rng=random.Random(0)),
        lambda: Layer(2, 2, seed=0, rng=random.Random(0)),
        lambda: MLP(2, [2, 1], seed=0, rng=random.Random(0)),
    ],
    ids=["neuron", "layer", "mlp"],
)
def test_seed_and_rng_both_raise(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Neuron(2, "softmax", seed=0),
        lambda: Layer(2, 2, "Tanh", seed=0),
        lambda: MLP(2, [2, 1], "gelu", seed=0),
        lambda: MLP(2, [2, 1], output_activation="nope", seed=0),
        lambda: Neuron(2, None, seed=0),
    ],
)
def test_bad_activation_raises(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    "activation, f",
    [
        ("tanh", math.tanh),
        ("relu", lambda z: max(z, 0.0)),
        ("sigmoid", lambda z: 1.0 / (1.0 + math.exp(-z))),
        ("linear", lambda z: z),
    ],
)
def test_neuron_computes_activation_of_affine(activation, f):
    n = Neuron(3, activation, seed=5)
    x = [0.5, -1.5, 2.0]
    z = n.b.data
    for w, xi in zip(n.w, x):
        z += w.data * xi
    out = n(x)
    assert out.data == pytest.approx(f(z), rel=1e-15, abs=0.0)


def test_output_activation_linear_head():
    model = MLP(2, [3, 1], output_activation="linear", seed=0)
    assert [n.activation for layer in model.layers for n in layer.neurons] == ["tanh"] * 3 + ["linear"]
    hidden = [math.tanh(n.b.data + sum(w.data * x for w, x in zip(n.w, [1.0, -1.0]))) for n in model.layers[0].neurons]
    head = model.layers[1].neurons[0]
    expected = head.b.data + sum(w.data * h for w, h in zip(head.w, hidden))
    assert model([1.0, -1.0]).data == pytest.approx(expected, rel=1e-14)


def test_module_base_and_repr():
    assert Module().parameters() == []
    Module().zero_grad()
    assert "Neuron(3" in repr(Neuron(3, seed=0))
    assert repr(MLP(3, [2, 1], seed=0)).startswith("MLP(")


def test_zero_grad_zeroes_every_parameter():
    model = MLP(3, [4, 4, 1], seed=0)
    mse_loss([model(x) for x in XS], YS).backward()
    assert sum(p.grad != 0.0 for p in model.parameters()) > 30
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


# --------------------------------------------------------------------------
# mse_loss and SGD
# --------------------------------------------------------------------------
@given(st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=1, max_size=10))
def test_mse_loss_is_mean_of_squared_differences(pairs):
    preds = [Value(p) for p, _ in pairs]
    targets = [t for _, t in pairs]
    loss = mse_loss(preds, targets)
    expected = sum((p - t) ** 2 for p, t in pairs) / len(pairs)
    assert loss.data == pytest.approx(expected, rel=1e-12, abs=1e-300)
    loss.backward()
    for p, (pv, tv) in zip(preds, pairs):
        assert p.grad == pytest.approx(2.0 * (pv - tv) / len(pairs), rel=1e-12, abs=1e-300)


def test_mse_loss_single_value_and_value_targets():
    loss = mse_loss(Value(3.0), 1.0)
    assert loss.data == 4.0
    loss = mse_loss([Value(1.0), Value(2.0)], [Value(0.0), Value(4.0)])
    assert loss.data == (1.0 + 4.0) / 2


@pytest.mark.parametrize("preds, targets", [([Value(1.0)], [1.0, 2.0]), ([Value(1.0), Value(2.0)], [1.0]), ([], [])])
def test_mse_loss_mismatched_lengths_raise(preds, targets):
    with pytest.raises(ValueError):
        mse_loss(preds, targets)


@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(-10, 10)), min_size=1, max_size=8), st.floats(0.0, 1.0))
def test_sgd_step_moves_by_minus_lr_grad(pairs, lr):
    params = [Value(v) for v, _ in pairs]
    for p, (_, g) in zip(params, pairs):
        p.grad = g
    before = [p.data for p in params]
    opt = SGD(iter(params), lr)  # any iterable
    opt.step()
    assert [p.data for p in params] == [b - lr * g for b, (_, g) in zip(before, pairs)]
    assert [p.grad for p in params] == [g for _, g in pairs]  # step leaves grads alone
    opt.zero_grad()
    assert all(p.grad == 0.0 for p in params)


def _train(model, steps, lr=0.1):
    opt = SGD(model.parameters(), lr)
    losses = []
    for _ in range(steps):
        loss = mse_loss([model(x) for x in XS], YS)
        model.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.data)
    return losses


def test_training_run_reduces_the_loss():
    model = MLP(3, [4, 4, 1], seed=0)
    losses = _train(model, 20)
    assert len(losses) == 20
    assert losses[-1] < losses[0] / 2
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    with no_grad():
        final = mse_loss([model(x) for x in XS], YS).data
    assert final < losses[-1]


def test_training_is_reproducible():
    assert _train(MLP(3, [4, 4, 1], seed=0), 5) == _train(MLP(3, [4, 4, 1], seed=0), 5)


# --------------------------------------------------------------------------
# Gradients against central finite differences
# --------------------------------------------------------------------------
def _loss_value(model):
    with no_grad():
        return mse_loss([model(x) for x in XS], YS).data


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_mlp_gradient_matches_central_differences(seed, activation):
    model = MLP(3, [4, 4, 1], activation, seed=seed)
    loss = mse_loss([model(x) for x in XS], YS)
    loss.backward()
    params = model.parameters()
    h = 1e-6
    checked = 0
    for index in random.Random(seed).sample(range(len(params)), 8):
        p = params[index]
        original = p.data
        p.data = original + h
        up = _loss_value(model)
        p.data = original - h
        down = _loss_value(model)
        p.data = original
        numeric = (up - down) / (2 * h)
        assert math.isclose(p.grad, numeric, rel_tol=1e-5, abs_tol=1e-9), (index, p.grad, numeric)
        checked += abs(p.grad) > 1e-4
    assert checked >= 1  # the comparison was not vacuous
