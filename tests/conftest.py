"""Shared fixtures live in ``tests/fixtures/`` as plugins, one module per area."""

pytest_plugins = [
    "tests.fixtures.controlplane",
    "tests.fixtures.emulator",
    "tests.fixtures.node",
]
