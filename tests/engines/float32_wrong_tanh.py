"""float32_values.py with a wrong tanh derivative (1 - t, not 1 - t*t): a
bug beyond float32's precision too, which the diagnosis must still name
beside the engine's precision."""
from float32_values import Value, f32, np


def tanh(self):
    t = np.tanh(self.data)
    return Value(t, (self,), (f32(1.0) - t,))


Value.tanh = tanh
