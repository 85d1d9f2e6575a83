"""gradparity's engine: a scalar autograd engine with PyTorch float64 semantics."""
from .function import Function, FunctionCtx
from .grad_mode import is_grad_enabled, no_grad
from .value import Value, linear, topological_order
from .autograd import grad
from .function import once_differentiable

__all__ = ["Function", "FunctionCtx", "Value", "is_grad_enabled", "linear", "no_grad", "topological_order"]
__all__ += ["grad", "once_differentiable"]
__version__ = "0.1.0"
from .dual import Dual  # forward mode
from .forward import dual_level, jvp, make_dual, unpack_dual  # forward mode
__all__ += ["Dual", "dual_level", "jvp", "make_dual", "unpack_dual"]
