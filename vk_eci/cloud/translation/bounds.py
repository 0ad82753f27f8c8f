"""Bounds on what translating one pod may build (docs/BEHAVIOUR.md §8).

A tenant controls pod specs and ConfigMap/Secret values, and ``$(VAR)`` expansion multiplies
them: a 100 KB value referenced 5,000 times from 20 KB of env is 500 MB per variable. Without a
bound the node builds it, the chart's memory limit kills it, and start-up reconciliation tries
the pod again: every tenant loses the node. So every string is measured while it is built, and
each total is counted as it grows; the first overflow raises :class:`InvalidInput` naming the
container, variable or volume and the limit (never the value), which the pod controller
reports once as a ``ProviderFailed`` event without retrying.

The limits are those past which the pod could not run anyway (Linux's MAX_ARG_STRLEN, ECI's
documented ConfigFile volume limits), plus one per pod, counted as each variable, argument
and file is added, that keeps a create's request small enough to hold in memory a few times
over while it is encoded, signed and sent.
"""

from __future__ import annotations

from vk_eci.cloud.api.errors import InvalidInput

# Linux's MAX_ARG_STRLEN (32 pages): execve refuses any single argument or NAME=value
# environment string longer than this with E2BIG, so no container could start with one.
MAX_STRING = 128 * 1024
MAX_STRING_WHY = "Linux's MAX_ARG_STRLEN: the container could not start"
# ECI's documented ConfigFile volume limits: one file at most 32 KB, a volume's files together
# at most 60 KB (help.aliyun.com, "Mount a ConfigFile volume"). ECI refuses more.
MAX_VOLUME_FILE = 32 * 1024
MAX_VOLUME = 60 * 1024
# Everything the node builds into one CreateContainerGroup (every container's environment,
# command and arguments, every volume file, every registry credential). Stricter than
# Linux's ARG_MAX (2 MiB per container): the SDK sends the request percent-encoded in one URL
# and holds several copies while signing (measured: 46 MiB of peak growth for 4 MiB of
# content), and --pod-workers (32) creates may be in flight at once, which must stay inside
# the chart's 1 Gi memory limit. ECI's own limits already cap volumes at 60 KB each; 1 MiB of
# env is far beyond real use.
MAX_POD = 1024 * 1024
# Each variable, argument or file also costs its parameter names in the request
# (``&Container.12.EnvironmentVar.345.Key=…&…Value=``): charged per entry, so a million
# empty variables cannot slip under the byte count.
ENTRY_COST = 64


def size_of(text: str) -> int:
    """Bytes of ``text`` as Linux and ECI count it (UTF-8)."""
    return len(text.encode("utf-8", "surrogatepass"))


class Budget:
    """A running byte total that refuses to grow past ``limit``.

    ``scope`` names what is counted ("the files of volume cfg"), ``why`` the source of the
    limit; :meth:`add` raises naming the ``thing`` that went
    over. A parent budget (the pod's) is charged by every add too.
    """

    def __init__(self, scope: str, limit: int, why: str, parent: Budget | None = None) -> None:
        self.scope = scope
        self.limit = limit
        self.why = why
        self.parent = parent
        self.used = 0

    def add(self, thing: str, size: int) -> None:
        """Count one entry of ``size`` bytes (plus :data:`ENTRY_COST`)."""
        self._charge(thing, size + ENTRY_COST)

    def release(self, size: int) -> None:
        """Give back an entry of ``size`` bytes (an env variable defined again)."""
        self._charge("", -(size + ENTRY_COST))

    def _charge(self, thing: str, cost: int) -> None:
        if self.used + cost > self.limit:
            raise InvalidInput(thing, f"{self.scope} would exceed {self.limit} bytes "
                                      f"({self.why})")
        if self.parent is not None:
            self.parent._charge(thing, cost)
        self.used += cost


def check_string(thing: str, size: int) -> None:
    """Refuse one string longer than Linux lets a process receive."""
    if size > MAX_STRING:
        raise InvalidInput(thing, f"is {size} bytes, more than {MAX_STRING} "
                                  f"({MAX_STRING_WHY})")


def pod_budget(pod_name: str) -> Budget:
    return Budget(f"the request for pod {pod_name}", MAX_POD,
                  "the node's bound on one container group's request")


def volume_budget(volume: str, pod: Budget | None) -> Budget:
    return Budget(f"the files of volume {volume}", MAX_VOLUME,
                  "ECI's limit for a ConfigFile volume", pod)
