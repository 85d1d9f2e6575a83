"""Engine-supplied text as data.

Exception messages and names come from the engine under test: they can be
megabytes long, hold control characters or terminal escapes, start like a
spreadsheet formula, or raise when asked for.  Each reaches a report only
through ``describe`` (in the engine's process) and ``clean`` (again in the
judge's, which trusts nothing the worker sends).
"""
import re

LIMIT = 300  # characters kept of one message
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A cell starting with one of these is a formula to a spreadsheet (OWASP's
# CSV injection list); a leading apostrophe makes it text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def describe(exc):
    """``Name: message`` for an exception, whatever its str() and name do."""
    try:
        name = str(type(exc).__name__)
    except Exception:
        name = "exception"
    message = _safe_str(exc)
    return clean(f"{name}: {message}" if message else name)


def clean(text, limit=LIMIT):
    """``text`` on one line, at most ``limit`` characters (and a note of how
    many there were), control characters escaped, never a formula."""
    if not isinstance(text, str):
        text = _safe_str(text)
    total = len(text)
    if total > limit:
        text = text[:limit]
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    if total > limit:
        text += f" ... [{total:,} characters, cut]"
    return no_formula(text)


def no_formula(text):
    """``text`` with an apostrophe in front if a spreadsheet would read it
    as a formula: every text cell of a report goes through this."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _safe_str(obj):
    for show in (str, repr):
        try:
            text = show(obj)
            if isinstance(text, str):
                return str.__str__(text)  # a plain str, whatever a subclass overrides
        except Exception:
            pass
    return f"<unprintable {type(obj).__name__}>"
