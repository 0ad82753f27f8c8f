"""The offline ECI (docs/DEVELOPING.md): a local ECI API server the official SDK cannot tell
apart. Nothing of the node imports this package (only the entry points cli, demo, __main__);
it imports ``matcher`` for server-side matching and ``vk_eci.log``, nothing else of ours.
"""

from vk_eci.emulator.app import Emulator
from vk_eci.emulator.clock import Clock, ManualClock, RealClock
from vk_eci.emulator.faults import Faults
from vk_eci.emulator.timing import Timing

__all__ = ["Clock", "Emulator", "Faults", "ManualClock", "RealClock", "Timing"]
