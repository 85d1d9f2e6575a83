"""A learner's micrograd/engine.py in a folder without __init__.py, while
PyPI micrograd is installed: ``micrograd.engine`` resolves to the installed
package, not to this file.  The run must refuse, naming both."""
from micrograd_learner_marker import MARK  # noqa: F401  (never reached: this file is not what loads)
