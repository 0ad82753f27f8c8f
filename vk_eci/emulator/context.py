"""What an action handler receives: the world, the decoded request and the server's settings."""

from __future__ import annotations

from dataclasses import dataclass

from vk_eci.emulator.faults import Faults
from vk_eci.emulator.params import Tree
from vk_eci.emulator.state import State

# Parameters of the signature and the RPC envelope, not of the action.
ENVELOPE = frozenset({"Action", "Version", "Format", "Timestamp", "SignatureNonce",
                      "SignatureMethod", "SignatureVersion", "AccessKeyId", "Signature",
                      "SecurityToken", "BearerToken", "SignatureType"})


@dataclass
class Ctx:
    state: State
    faults: Faults
    tree: Tree
    flat: dict[str, str]      # the action's own parameters, undecoded
    endpoint: str

    @property
    def now(self) -> float:
        return self.state.now()

    def fingerprint(self, *, skip: frozenset[str] = frozenset()) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, v) for k, v in self.flat.items() if k not in skip))
