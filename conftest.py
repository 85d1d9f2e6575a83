"""Repository-wide pytest configuration.

Hypothesis profiles
-------------------
``dev``       quick local runs (50 examples per test), no deadline, no speed health check
``ci``        derandomized, no deadline, no speed health check, no example database, 100 examples
``thorough``  2000 examples per test, no deadline

The profile is taken from ``HYPOTHESIS_PROFILE``; without it, ``ci`` when the
``CI`` environment variable is set and ``dev`` otherwise. Hypothesis's own
``--hypothesis-profile NAME`` option overrides both (its plugin loads that
profile after this module is imported).

PyTorch
-------
Tests marked ``@pytest.mark.torch`` are skipped when torch is not installed
for the running Python (the local wheel is torch==2.13.0 for CPython 3.11
only). Markers are explicit: nothing is marked automatically.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the engine's own tests must not need Hypothesis
    settings = None

if settings is not None:
    # Parent every profile on Hypothesis's plain defaults: a profile registered
    # without a parent inherits whatever profile is active (with CI set,
    # Hypothesis has already loaded its built-in "ci" one).
    _base = settings.get_profile("default")
    # No deadline and no speed health check in any profile: a loaded machine
    # (a 2-core box running a `parity run` beside the tests) is slow, not
    # wrong, and Hypothesis advises both off where timing is not the test.
    settings.register_profile("dev", _base, max_examples=50, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile(
        "ci",
        _base,
        derandomize=True,
        deadline=None,
        database=None,
        max_examples=100,
        print_blob=True,
        # A loaded 2-core CI machine makes input generation slow, not wrong
        # (Hypothesis's advice for CI): no health check on speed.
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("thorough", _base, max_examples=2000, deadline=None)

    def _default_profile() -> str:
        ci = os.environ.get("CI", "")
        return "ci" if ci and ci.lower() not in ("0", "false", "no") else "dev"

    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _default_profile())


TORCH_SKIP_REASON = (
    "PyTorch is not installed for this Python: the torch wheel here is "
    "torch==2.13.0 for CPython 3.11 only; set GRADPARITY_TORCH_REQUIREMENT "
    "(and PIP_EXTRA_INDEX_URL for a CPU index) to install one for tox"
)


def _torch_available() -> bool:
    # find_spec does not import torch (importing it takes seconds).
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _torch_available():
        return
    skip_torch = pytest.mark.skip(reason=TORCH_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("torch") is not None:
            item.add_marker(skip_torch)
