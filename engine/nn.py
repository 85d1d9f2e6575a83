"""Neural networks from Values: Module, Neuron, Layer, MLP, mse_loss, SGD."""
import random

from .value import Value, _linear

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


def _make_rng(seed, rng):
    if rng is not None and seed is not None:
        raise ValueError("pass seed or rng, not both")
    if rng is None:
        rng = random.Random(seed)
    return rng


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
    return activation


class Module:
    def parameters(self):
        return []

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """activation(w · x + b), weights and bias drawn uniformly from [-1, 1]."""

    def __init__(self, nin, activation="tanh", *, seed=None, rng=None):
        rng = _make_rng(seed, rng)
        self.w = [Value(rng.uniform(-1.0, 1.0)) for _ in range(nin)]
        self.b = Value(rng.uniform(-1.0, 1.0))
        self.activation = _check_activation(activation)

    def __call__(self, x):
        x = tuple(xi if isinstance(xi, Value) else Value(xi) for xi in x)
        if len(x) != len(self.w):
            raise ValueError(f"{self!r} takes {len(self.w)} inputs, got {len(x)}")
        return self._activate(_linear(self.w, x, self.b))

    def _activate(self, z):
        if self.activation == "linear":
            return z
        return getattr(z, self.activation)()

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"Neuron({len(self.w)}, activation={self.activation!r})"


class Layer(Module):
    def __init__(self, nin, nout, activation="tanh", *, seed=None, rng=None):
        rng = _make_rng(seed, rng)
        self.neurons = [Neuron(nin, activation, rng=rng) for _ in range(nout)]

    def __call__(self, x):
        # Convert inputs once per layer, not once per neuron.
        x = tuple(xi if isinstance(xi, Value) else Value(xi) for xi in x)
        nin = len(self.neurons[0].w)
        if len(x) != nin:
            raise ValueError(f"this layer takes {nin} inputs, got {len(x)}")
        outs = [n._activate(_linear(n.w, x, n.b)) for n in self.neurons]
        return outs[0] if len(outs) == 1 else outs

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer([{', '.join(map(repr, self.neurons))}])"


class MLP(Module):
    """MLP(3, [4, 4, 1]): layers of tanh neurons (by default) on 3 inputs.

    ``output_activation`` defaults to ``activation``; pass "linear" for a
    regression head.  The same ``seed`` rebuilds the same weights.
    """

    def __init__(self, nin, nouts, activation="tanh", output_activation=None, *, seed=None, rng=None):
        rng = _make_rng(seed, rng)
        sizes = [nin] + list(nouts)
        last = len(nouts) - 1
        self.layers = [
            Layer(sizes[i], sizes[i + 1],
                  activation if i < last or output_activation is None else output_activation,
                  rng=rng)
            for i in range(len(nouts))
        ]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x if isinstance(x, (list, tuple)) else [x])
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP([{', '.join(map(repr, self.layers))}])"


def mse_loss(predictions, targets):
    """Mean of squared differences, as torch.nn.functional.mse_loss."""
    if isinstance(predictions, Value):
        predictions = [predictions]
    if not isinstance(targets, (list, tuple)):
        targets = [targets]
    predictions = list(predictions)
    if len(predictions) != len(targets) or not predictions:
        raise ValueError(f"mse_loss(): {len(predictions)} predictions but {len(targets)} targets")
    return sum((p - t) ** 2 for p, t in zip(predictions, targets)) / len(predictions)


class SGD:
    """Plain stochastic gradient descent: p.data -= lr * p.grad."""

    def __init__(self, params, lr):
        self.params = list(params)
        self.lr = float(lr)

    def step(self):
        lr = self.lr
        for p in self.params:
            p.data -= lr * p.grad

    def zero_grad(self):
        for p in self.params:
            p.grad = 0.0
