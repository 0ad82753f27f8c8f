"""ECI instance specs (vCPU -> memory GiB) the emulator accepts, ECI's documented table."""

from __future__ import annotations

SPECS: dict[float, tuple[float, ...]] = {
    0.25: (0.5, 1), 0.5: (1, 2), 1: (2, 4, 8), 2: (1, 2, 4, 8, 16), 4: (2, 4, 8, 16, 32),
    8: (4, 8, 16, 32, 64), 12: (12, 24, 48, 96), 16: (16, 32, 64, 128), 24: (24, 48, 96, 192),
    32: (32, 64, 128, 256), 52: (96, 192, 384), 64: (128, 256, 512),
}
DEFAULT = (2.0, 4.0)


def is_supported(cpu: float, memory: float) -> bool:
    return memory in SPECS.get(cpu, ())


def round_up(cpu: float, memory: float) -> tuple[float, float] | None:
    """The smallest supported spec holding ``cpu`` and ``memory`` (by vCPU, then memory)."""
    for c in sorted(SPECS):
        if c < cpu:
            continue
        for m in SPECS[c]:
            if m >= memory:
                return float(c), float(m)
    return None


def describe() -> str:
    return "; ".join(f"{c:g} vCPU: {', '.join(f'{m:g}' for m in ms)} GiB"
                     for c, ms in SPECS.items())
