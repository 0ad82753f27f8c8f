"""The annotations of an ImageCache object ("Image cache annotations", Alibaba's ECI guide),
read into ``CreateImageCache`` fields.

Each documented annotation is either sent (vSwitches, security group, resource group, ACR
instances and their RAM role ARNs, plain-HTTP and insecure registries, flash image cache, layer
reuse) or refused by name when the SDK's ``CreateImageCacheRequest`` has no field for it (a CPU
architecture other than amd64, an OS other than Linux): the cache would be built for the wrong
platform. A bad value raises ``ValueError`` naming annotation, value and reason, which the
controller reports as ``InvalidSpec``. Like pod annotations, they are read when the cache is
created. ``docs/ANNOTATIONS.md`` lists them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.placement import values
from vk_eci.cloud.placement.annotations import AcrInstance, acr_instances

P = "k8s.aliyun.com/"
VSWITCHES, SECURITY_GROUP, RESOURCE_GROUP = P + "vswitch-ids", P + "security-group-id", \
    P + "resource-group-id"
ACR_IDS, ACR_SERVICE_ARNS, ACR_USER_ARNS = P + "acr-instance-ids", P + "acr-service-arns", \
    P + "acr-user-arns"
PLAIN_HTTP, INSECURE = P + "plain-http-registry", P + "insecure-registry"
FLASH, REUSE = P + "imc-enable-flash", P + "imc-enable-reuse"
CPU_ARCH, OS_TYPE = P + "imc-cpu-arch", P + "imc-os-type"


def _arn(v: str) -> str:
    if not re.fullmatch(r"acs:ram::[0-9]{1,32}:role/[A-Za-z0-9.\-_]{1,64}", v.strip()):
        raise values.Bad("expected a RAM role ARN such as acs:ram::123456789012:role/name")
    return v.strip()


def _only(allowed: str, why: str) -> Callable[[str], None]:
    def parse(v: str) -> None:
        if v.strip().lower() != allowed:
            raise values.Bad(why)
    return parse


# annotation → (CreateImageCacheRequest attribute or None, parser).
FIELDS: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    VSWITCHES: ("v_switch_id", values.ids("vsw-", 10)),
    SECURITY_GROUP: ("security_group_id", values.ids("sg-", 1)),
    RESOURCE_GROUP: ("resource_group_id", values.ids("rg-", 1)),
    PLAIN_HTTP: ("plain_http_registry", values.registries),
    INSECURE: ("insecure_registry", values.registries),
    FLASH: ("flash", values.flag),
    REUSE: ("auto_match_image_cache", values.flag),
    ACR_SERVICE_ARNS: (None, _arn),
    ACR_USER_ARNS: (None, _arn),
    CPU_ARCH: (None, _only("amd64", "the ECI SDK's CreateImageCache has no CPU architecture "
                                    "field: only amd64 caches can be built")),
    OS_TYPE: (None, _only("linux", "the ECI SDK's CreateImageCache has no OS field: only "
                                   "Linux caches can be built")),
}


@dataclass(frozen=True)
class CacheOptions:
    """What an ImageCache object's annotations add to its ``CreateImageCache``."""

    fields: Mapping[str, Any]
    acr: tuple[AcrInstance, ...] = ()
    service_arn: str | None = None
    user_arn: str | None = None

    def apply(self, req: Any) -> None:
        """Set the fields on ``req`` (its own vSwitches replace the node's, and its zone)."""
        for attr, value in self.fields.items():
            setattr(req, attr, value)
        if "v_switch_id" in self.fields:
            req.zone_id = None
        if self.acr:
            req.acr_registry_info = [eci.CreateImageCacheRequestAcrRegistryInfo(
                instance_id=a.instance_id, region_id=a.region_id, arn_service=self.service_arn,
                arn_user=self.user_arn) for a in self.acr]


def parse_cache_annotations(annotations: Mapping[str, str] | None) -> CacheOptions:
    """Raise ``ValueError`` naming the first annotation that cannot be used."""
    ann = dict(annotations or {})
    parsed, problems = values.parse_present(ann, {**{k: p for k, (_, p) in FIELDS.items()},
                                                  ACR_IDS: acr_instances})
    if problems:
        raise ValueError(problems[0].message())
    fields: dict[str, Any] = {}
    for key, value in parsed.items():
        attr = FIELDS[key][0] if key in FIELDS else None
        if attr is not None:
            fields[attr] = value
    acr: list[AcrInstance] = parsed.get(ACR_IDS, [])
    arns = {k: parsed[k] for k in (ACR_SERVICE_ARNS, ACR_USER_ARNS) if k in parsed}
    for key in arns:
        if not acr:
            raise ValueError(f'annotation {key}="{ann[key]}": a RAM role ARN applies only to '
                             f"the ACR instances of {ACR_IDS}")
    return CacheOptions(fields, tuple(acr), arns.get(ACR_SERVICE_ARNS), arns.get(ACR_USER_ARNS))
