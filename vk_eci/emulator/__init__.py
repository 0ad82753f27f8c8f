"""The offline ECI: a local ECI API server the official SDK cannot tell apart.

Nothing in the node imports this package; it imports ``matcher`` for server-side matching.
"""

from vk_eci.emulator.app import Emulator
from vk_eci.emulator.clock import Clock, ManualClock, RealClock
from vk_eci.emulator.faults import Faults
from vk_eci.emulator.timing import Timing

__all__ = ["Clock", "Emulator", "Faults", "ManualClock", "RealClock", "Timing"]
