"""Hostile: a backward that does nothing, and at import it replaces the
harness's judge with one that passes everything."""
import parity.compare
from hostile_base import Value
from parity.compare import Verdict

parity.compare.judge = lambda *args, **kwargs: Verdict("pass")
Value.backward = lambda self: None
