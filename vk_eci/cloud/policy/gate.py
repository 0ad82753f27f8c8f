"""The provider's side of the profile: the policy check at group creation and the cluster-level
vSwitches and security group over the node's flags, and its ``enableClusterIp`` (docs/PROFILE.md).

The runner hands it the profile and namespace labels the cluster side keeps current (an
Informer each), so a change to the ConfigMap applies to the next pod without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.policy.evaluate import SINGLE_TENANT_HINT, Denial, PodFacts, evaluate
from vk_eci.cloud.policy.profile import Profile

POLICY_DENIED = "PolicyDenied"


@dataclass(frozen=True)
class PolicyGate:
    profile: Callable[[], Profile]
    namespace_labels: Callable[[str], Mapping[str, str] | None]
    node_gpus: int = 0
    single_tenant: bool = False

    def check(self, pod: PodFacts) -> Denial | None:
        return evaluate(self.profile().policy, pod, self.namespace_labels(pod.namespace),
                        node_gpus=self.node_gpus, single_tenant=self.single_tenant)

    def placement(self, node: Placement) -> Placement:
        """The node's placement with the profile's vSwitches and security group over it (the
        node's zone belongs to the node's vSwitch: dropped when the vSwitches change)."""
        profile = self.profile()
        if profile.vswitch_ids and profile.vswitch_ids != node.vswitch_ids:
            node = replace(node, vswitch_ids=profile.vswitch_ids, zone_id=None)
        if profile.security_group_id:
            node = replace(node, security_group_id=profile.security_group_id)
        return node


    def cluster_ip(self) -> bool:
        """Whether a new pod gets Service access (the injected kube-proxy, when the node gives
        it): the profile's ``enableClusterIp: false`` turns it off like ``--cluster-ip-mode
        none``; ``true`` or absent leaves the flag's choice."""
        return self.profile().enable_cluster_ip is not False


def denied(denial: Denial) -> InvalidInput:
    """The permanent error of a denied pod: never retried, its event reason ``PolicyDenied``."""
    return InvalidInput(f"pod in namespace {denial.namespace}",
                        f"{denial.message()}; {SINGLE_TENANT_HINT}",
                        code=POLICY_DENIED, event=POLICY_DENIED)
