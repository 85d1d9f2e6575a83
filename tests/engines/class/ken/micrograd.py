"""Ken: no autograd engine at all, only functions that estimate derivatives
numerically with central differences (he did the first part of the lecture).
Bug: there is no value class: nothing to grade."""
import math


def derivative(f, x, h=1e-6):
    """Central difference estimate of f'(x)."""
    return (f(x + h) - f(x - h)) / (2 * h)


def partials(f, xs, h=1e-6):
    """Estimate every partial derivative of f at the point xs."""
    grads = []
    for i in range(len(xs)):
        up = list(xs)
        down = list(xs)
        up[i] += h
        down[i] -= h
        grads.append((f(*up) - f(*down)) / (2 * h))
    return grads


def neuron(x1, x2, w1, w2, b):
    return math.tanh(x1 * w1 + x2 * w2 + b)


if __name__ == "__main__":
    print(derivative(lambda x: 3 * x**2 - 4 * x + 5, 3.0))  # about 14
    print(partials(neuron, [2.0, 0.0, -3.0, 1.0, 6.8813735870195432]))
