"""The offline ECI (docs/DEVELOPING.md): a local ECI API server the official SDK cannot tell
apart. Nothing of the node imports this package (only the entry points cli, demo, __main__);
of ours it imports only ``vk_eci.log``: its image references and cache choice are its own
(``reference.py``, ``matching.py``), written from ECI's documents (docs/EMULATOR.md).
"""

from vk_eci.emulator.app import Emulator
from vk_eci.emulator.clock import Clock, ManualClock, RealClock
from vk_eci.emulator.faults import Faults
from vk_eci.emulator.model import EciModel
from vk_eci.emulator.timing import Timing

__all__ = ["Clock", "EciModel", "Emulator", "Faults", "ManualClock", "RealClock", "Timing"]
