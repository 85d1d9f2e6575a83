"""Higher derivatives by differentiating gradients again: what a
higher_order case asks (parity/higher_order.py), computed the same way for
the engine under test (in its worker) and for torch (backends/torch.py).

``differentiate(y, leaves)`` is a backend's one step - the derivatives of
y with respect to each leaf, as values of the backend that can be
differentiated again (None where y does not depend on a leaf) - and
``mul``/``mul_const``/``add`` its ops.  Plain Python: no torch here.
"""
import inspect

from .unsupported import Unsupported

NO_HIGHER_ORDER = ("the engine has no higher-order gradients: neither a grad(outputs, inputs, create_graph=True) "
                   "function beside its class nor Values in .grad after backward(create_graph=True)")


def derivatives(spec, leaves, loss, differentiate, ops):
    """(first, extra): the loss's gradient (one value or None per leaf),
    then the case's higher quantities in order (values or None: zero)."""
    first = differentiate(loss, leaves)
    if "hvp" in spec:
        total = None
        for g, c in zip(first, spec["hvp"]):
            if ops.is_value(g):
                term = ops.mul_const(g, c)
                total = term if total is None else ops.add(total, term)
        return first, differentiate(total, leaves) if ops.is_value(total) else [None] * len(leaves)
    known = {(): first}  # index -> the derivatives of its quantity by each leaf

    def quantity(index):
        prefix = index[:-1]
        if prefix not in known:
            inner = quantity(prefix)
            if len(prefix) == 1 and "times_leaf" in spec and inner is not None:
                inner = ops.mul(leaves[spec["times_leaf"]], inner)
            known[prefix] = [None] * len(leaves) if inner is None else differentiate(inner, leaves)
        return known[prefix][index[-1]]

    return first, [quantity(tuple(index)) for index in spec["derivatives"]]


def grad_function(value_class, modules):
    """The engine's ``grad(outputs, inputs, grad_outputs=None,
    create_graph=False)`` (torch.autograd.grad's signature): a function of
    that name in the class's module or a package above it, or None."""
    name = value_class.__module__
    while name:
        module = modules.get(name)
        candidate = getattr(module, "grad", None)
        if inspect.isfunction(candidate) or inspect.isbuiltin(candidate):
            return candidate
        name = name.rpartition(".")[0]
    return None


def takes_create_graph(value_class):
    """Whether the class's backward() takes ``create_graph`` (then its
    gradients may be Values after backward(create_graph=True))."""
    try:
        return "create_graph" in inspect.signature(value_class.backward).parameters
    except (TypeError, ValueError, AttributeError):
        return False


class BackendOps:
    """mul, mul_const and add of a backend, by the op table's names, and
    which of its values can be differentiated (a plain number cannot)."""

    def __init__(self, ops, value_class):
        self.mul, self.mul_const, self.add = ops["mul"], ops["mul_const"], ops["add"]
        self.value_class = value_class

    def is_value(self, x):
        return isinstance(x, self.value_class)


def by_grad_function(grad):
    """differentiate() through the engine's grad function."""
    def differentiate(y, leaves):
        return list(grad(y, leaves, create_graph=True))
    return differentiate


def by_value_gradients(grad_attr, value_class):
    """differentiate() through backward(create_graph=True): every value y
    reaches (by micrograd's ``_prev``) starts at 0, so that no gradient
    left by an earlier backward takes part; the leaves' gradients are read."""
    def differentiate(y, leaves):
        for v in _reached(y, leaves):
            setattr(v, grad_attr, 0.0)
        y.backward(create_graph=True)
        grads = [getattr(leaf, grad_attr) for leaf in leaves]
        if not all(isinstance(g, value_class) or _is_zero(g) for g in grads):
            raise Unsupported(f"{NO_HIGHER_ORDER} (a gradient is {type(grads[0]).__name__})")
        return [g if isinstance(g, value_class) else None for g in grads]
    return differentiate


def _is_zero(x):
    return isinstance(x, (int, float)) and x == 0


def _reached(root, leaves):
    seen, stack = {id(v): v for v in leaves}, [root]
    while stack:
        v = stack.pop()
        if id(v) not in seen:
            seen[id(v)] = v
            stack.extend(getattr(v, "_prev", ()))
    return seen.values()
