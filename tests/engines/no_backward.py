"""Its backward is named ``compute_gradients()``, a name detection does not
guess: the run says so and names the flag (``--backward compute_gradients``)."""
from backprop_method import Value as _Base


class Value(_Base):
    def _make(self, data, children, local):
        out = Value(data, children)
        out._local = local
        return out

    compute_gradients = _Base.backprop
    backprop = None  # hidden: not a method
