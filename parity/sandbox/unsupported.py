"""Cases an engine has no way to run: `unsupported`, not errors.

An op the engine lacks is found by probing it (engine_runner.probe); a
feature its backward lacks - higher derivatives, a seed for backward - shows
only when a case asks for it, in the engine's process.  There the case's
reply carries it in its error string, ``"<feature> unsupported: <detail>"``
(``marked``), and the judge's side reads it back (``parse``) as a Result
whose ``unsupported`` says what the engine lacks.  Every FEATURES name has
a space or a hyphen, which the exception names that text.describe() puts
first never have: no error of the engine's reads as one.
Plain Python: this module runs in the engine's worker.
"""
SUFFIX = " unsupported: "
# feature -> (what the engine lacks, as the verdict says it: "engine lacks ...";
# whether the reply's detail follows it)
FEATURES = {
    "higher-order": ("higher-order gradients", False),  # sandbox/higher_order.py's UNSUPPORTED
    "seeded backward": ("backward(gradient=g)", True),
}


class Unsupported(Exception):
    """The engine has no way to do what the case asks (a FEATURES name)."""

    def __init__(self, feature, detail):
        super().__init__(detail)
        self.feature = feature

    def reply(self):
        return marked(self.feature, str(self))


def marked(feature, detail):
    """The error string of a case the engine cannot run for lack of ``feature``."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")
    return f"{feature}{SUFFIX}{detail}"


def parse(error):
    """What the engine lacks, as Result.unsupported says it, if ``error`` is
    marked so; None otherwise."""
    feature, sep, detail = error.partition(SUFFIX)
    if not sep or feature not in FEATURES:
        return None
    lacks, with_detail = FEATURES[feature]
    return f"{lacks}: {detail}" if with_detail and detail else lacks
