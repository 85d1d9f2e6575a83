"""A forward case (parity/forward_mode.py) on the engine under test: its
``jvp(f, primals, tangents)`` (torch.func.jvp's signature), found beside its
class as grad() is (higher_order.py), or made from a dual-number class's
tangent attribute (attribute_jvp), with f the case's graph run on
whatever jvp passes in (the engine's dual numbers) through the op table's
engine calls.  Plain Python: no torch here.
"""
import inspect

from .unsupported import Unsupported

NO_FORWARD_MODE = ("the engine has no forward mode: no jvp(f, primals, tangents) function beside its class "
                   "(torch.func.jvp's signature)")


def jvp_function(value_class, modules):
    """The engine's jvp function, or None."""
    name = value_class.__module__
    while name:
        candidate = getattr(modules.get(name), "jvp", None)
        if inspect.isfunction(candidate) or inspect.isbuiltin(candidate):
            return candidate
        name = name.rpartition(".")[0]
    return None


def attribute_jvp(make, tangent_attr, read_data):
    """A jvp for a dual-number class (an adapter file's TANGENT): leaves
    made with their tangents set, the outputs' number and tangent read.
    One tangent per number: nested, it confuses the two perturbations, as
    such a class does."""
    def jvp(f, primals, tangents):
        leaves = []
        for primal, tangent in zip(primals, tangents):
            leaf = make(primal)
            setattr(leaf, tangent_attr, tangent)
            leaves.append(leaf)
        outputs = f(*leaves)
        if not isinstance(outputs, (tuple, list)):  # one output: one number each, as torch.func.jvp
            return read_data(outputs), getattr(outputs, tangent_attr)
        return tuple(map(read_data, outputs)), tuple(getattr(o, tangent_attr) for o in outputs)
    return jvp


def run_forward(case, jvp, evaluate, ops):
    """(primals, tangents) of the graph's outputs and loss, as jvp returns
    them; ``evaluate(leaves)`` runs the graph, giving its outputs and loss;
    ``ops``: the engine's, by the op table's names."""
    if jvp is None:
        raise Unsupported(NO_FORWARD_MODE)
    if case.spec.get("nested"):
        return nested_jvp(jvp, *case.leaves, 1.0, ops["add"], ops["mul"])
    return jvp(lambda *leaves: tuple(evaluate(leaves)), tuple(case.leaves), tuple(case.spec["tangents"]))


def nested_jvp(jvp, x0, y0, one, add, mul):
    """parity.forward_mode's perturbation-confusion case: (primals,
    tangents) of x * (the inner jvp's tangent of x + y along y), by an
    outer jvp along x; ``one``, ``add``, ``mul``: the backend's (torch's too)."""
    def outer(x):
        _, inner = jvp(lambda y: add(x, y), (y0,), (one,))
        product = mul(x, inner)
        return product, product  # the graph's one output, and the loss
    return jvp(outer, (x0,), (one,))
