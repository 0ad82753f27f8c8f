"""Shared fixtures live in ``tests/fixtures/`` as plugins, one module per area.

Hypothesis profiles are registered here, once, before any test module is imported:
``ci`` is derandomized (the same examples on every run, so CI never fails by chance)
and prints the reproduction blob of a failure; ``dev`` keeps random exploration for
local runs. ``HYPOTHESIS_PROFILE`` picks one explicitly (``hack/test.sh`` exports
``ci``); otherwise a set ``CI`` variable means ``ci`` and anything else ``dev``.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", derandomize=False, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

pytest_plugins = [
    "tests.fixtures.controlplane",
    "tests.fixtures.emulator",
    "tests.fixtures.node",
]
