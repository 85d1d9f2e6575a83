"""What an engine cannot do at all, said from its worker: a case that needs
a feature the engine lacks (higher-order gradients, forward mode, a seeded
backward) is `unsupported`, not an error.  The reply's error carries the
reason after UNSUPPORTED: a prefix with a space, which no exception's name
(put first by text.describe) has, so an engine's own exception cannot pass
for it.
"""
UNSUPPORTED = "unsupported feature: "


class Unsupported(Exception):
    """The engine lacks what the case needs; the message says what."""
