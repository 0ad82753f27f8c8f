"""What ECI allocated to a group, as the annotations Alibaba's virtual node writes on its pod.

Alibaba's virtual node adds these to a pod once ECI has scheduled it ("Pod annotations",
the annotations added after the system schedules resources), so that ``kubectl get pod -o
yaml`` shows the instance, the size billed, the zone and the addresses ECI chose. The status
sync writes them in the same patch as the status (``docs/ANNOTATIONS.md``).
"""

from __future__ import annotations

from typing import Any

INSTANCE_ID = "k8s.aliyun.com/eci-instance-id"
INSTANCE_SPEC = "k8s.aliyun.com/eci-instance-spec"
INSTANCE_ZONE = "k8s.aliyun.com/eci-instance-zone"
EIP_ADDRESS = "k8s.aliyun.com/allocated-eipAddress"
IPV6_ADDRESS = "k8s.aliyun.com/allocated-ipv6Address"
ENI_ID = "k8s.aliyun.com/eni-instance-id"
# The cache ECI used, under Alibaba's name; written with the node's own cache annotations
# (cloud/caches/report.py) once ECI's events say which.
MATCHED_CACHE = "k8s.aliyun.com/eci-matched-image-cache"
KEYS = (INSTANCE_ID, INSTANCE_SPEC, INSTANCE_ZONE, EIP_ADDRESS, IPV6_ADDRESS, ENI_ID)


def spec_of(group: Any) -> str:
    """The size ECI bills: the ECS instance type, else ``<cpu>-<memory>Gi`` as ECI names a
    vCPU/memory spec (``2.0-4.0Gi``); empty while ECI reports neither."""
    if getattr(group, "instance_type", None):
        return str(group.instance_type)
    cpu, memory = getattr(group, "cpu", None), getattr(group, "memory", None)
    if cpu and memory:
        return f"{float(cpu):.1f}-{float(memory):.1f}Gi"
    return ""


def allocated(group: Any) -> dict[str, str]:
    """The allocation annotations of ``group`` that ECI has decided (empty values left out:
    a group still Scheduling has no zone or ENI yet, one without an EIP has no address)."""
    values = {
        INSTANCE_ID: getattr(group, "container_group_id", None),
        INSTANCE_SPEC: spec_of(group),
        INSTANCE_ZONE: getattr(group, "zone_id", None),
        EIP_ADDRESS: getattr(group, "internet_ip", None),
        IPV6_ADDRESS: getattr(group, "ipv_6address", None),  # the SDK's spelling
        ENI_ID: getattr(group, "eni_instance_id", None),
    }
    return {k: str(v) for k, v in values.items() if v}


def missing(have: dict[str, str] | None, wanted: dict[str, str]) -> dict[str, str]:
    """The allocation annotations in ``wanted`` that a pod with annotations ``have`` lacks or
    holds with another value: what the next status write adds (empty: nothing to add)."""
    have = have or {}
    return {k: v for k, v in wanted.items() if k in KEYS and have.get(k) != v}
