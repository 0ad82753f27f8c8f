"""The emulator's placement model through the official SDK (ManualClock): GPU instance types,
CPU architecture, spot price check, protection period and preemption timeline, EIP/IPv6/fixed IP,
vSwitch choice, and registries reached over plain HTTP, a self-signed certificate or ACR
without a secret."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.fixtures.emulator import EciCaller
from tests.integration.test_emulator_groups import create, create_req, ctr, describe
from vk_eci.emulator import Emulator
from vk_eci.emulator.placement import SPOT_WARNING_S, spot_price

pytestmark = pytest.mark.integration
GPU_TYPE = "ecs.gn6i-c4g1.xlarge"  # 4 vCPU, 15 GiB, 1 GPU


async def refused(call: EciCaller, req: m.CreateContainerGroupRequest) -> ClientException:
    with pytest.raises(ClientException) as e:
        await create(call, req)
    return e.value


async def test_gpu_instance_type_gives_its_size_and_gpus(emulator: Emulator,
                                                         eci_call: EciCaller) -> None:
    gid = await create(eci_call, create_req(
        instance_type=GPU_TYPE, containers=[ctr(command=["sleep", "60"], gpu=1)]))
    g = await describe(eci_call, gid)
    assert (g.instance_type, g.cpu, g.memory) == (GPU_TYPE, 4.0, 15.0)
    assert g.containers[0].gpu == 1
    too_many = await refused(eci_call, create_req(
        "g2", instance_type=GPU_TYPE, containers=[ctr(gpu=1), ctr("b", gpu=1)]))
    assert too_many.code == "InvalidParameter.Gpu" and "has 1" in too_many.message
    no_gpu = await refused(eci_call, create_req("g3", containers=[ctr(gpu=1)]))
    assert no_gpu.code == "InvalidParameter.Gpu" and "has no GPU" in no_gpu.message


async def test_architecture_must_match_the_instance_type(emulator: Emulator,
                                                         eci_call: EciCaller) -> None:
    await create(eci_call, create_req(cpu_architecture="ARM64", instance_type="ecs.g8y.large"))
    wrong = await refused(eci_call, create_req("g2", cpu_architecture="ARM64",
                                               instance_type="ecs.c6.large"))
    assert wrong.code == "InvalidParameter.CpuArchitecture"
    odd = await refused(eci_call, create_req("g3", cpu_architecture="RISCV"))
    assert "CpuArchitecture" in odd.message


async def test_spot_price_limit_is_checked_against_the_market(emulator: Emulator,
                                                              eci_call: EciCaller) -> None:
    market = spot_price(2.0, 4.0, 0)
    size = {"cpu": 2.0, "memory": 4.0}
    low = await refused(eci_call, create_req(spot_strategy="SpotWithPriceLimit",
                                             spot_price_limit=round(market - 0.001, 3), **size))
    assert low.code == "InvalidSpotPriceLimit.LowerThanPublicPrice"
    missing = await refused(eci_call, create_req(spot_strategy="SpotWithPriceLimit", **size))
    assert "SpotPriceLimit" in missing.message
    gid = await create(eci_call, create_req(spot_strategy="SpotWithPriceLimit",
                                            spot_price_limit=market, **size))
    g = await describe(eci_call, gid)
    assert (g.spot_strategy, g.spot_price_limit) == ("SpotWithPriceLimit", market)


async def test_preemption_warns_then_expires_and_respects_protection(
        emulator: Emulator, eci_call: EciCaller) -> None:
    unprotected = await create(eci_call, create_req(
        "spot0", spot_strategy="SpotAsPriceGo", spot_duration=0,
        containers=[ctr(command=["sleep", "100000"])]))
    protected = await create(eci_call, create_req(
        "spot1", spot_strategy="SpotAsPriceGo", containers=[ctr(command=["sleep", "100000"])]))
    on_demand = await create(eci_call, create_req("plain"))
    emulator.clock.advance(60)
    assert (await describe(eci_call, unprotected)).status == "Running"
    with pytest.raises(ValueError, match="not a spot instance"):
        emulator.preempt(on_demand)

    expires = emulator.preempt(unprotected)
    assert expires == pytest.approx(emulator.clock.now() + SPOT_WARNING_S)
    g = await describe(eci_call, unprotected)
    assert g.status == "Running"
    [warning] = [e for e in g.events if e.reason == "SpotToBeReleased"]
    assert warning.type == "Warning"
    emulator.clock.advance(SPOT_WARNING_S - 1)
    assert (await describe(eci_call, unprotected)).status == "Running"
    emulator.clock.advance(2)
    g = await describe(eci_call, unprotected)
    assert g.status == "Expired" and g.expired_time
    state = g.containers[0].current_state
    assert (state.state, state.exit_code, state.reason) == ("Terminated", 137, "Expired")

    # SpotDuration defaults to one protected hour: the warning waits for its end.
    created = emulator.state.groups[protected].created
    expires = emulator.preempt(protected)
    assert expires == pytest.approx(created + 3600 + SPOT_WARNING_S)
    assert not [e for e in (await describe(eci_call, protected)).events
                if e.reason == "SpotToBeReleased"]
    emulator.clock.advance(created + 3600 - emulator.clock.now() + 1)
    g = await describe(eci_call, protected)
    assert g.status == "Running" and any(e.reason == "SpotToBeReleased" for e in g.events)


async def test_addresses_vswitch_and_fixed_ip(emulator: Emulator, eci_call: EciCaller) -> None:
    eip = await describe(eci_call, await create(eci_call, create_req(
        "eip", auto_create_eip=True, eip_bandwidth=10)))
    assert eip.internet_ip.startswith("203.0.113.")
    both = await refused(eci_call, create_req("both", auto_create_eip=True,
                                              eip_instance_id="eip-1"))
    assert "EipInstanceId" in both.message
    v6 = await describe(eci_call, await create(eci_call, create_req(
        "v6", ipv_6address_count=1, v_switch_id="vsw-b,vsw-c",
        schedule_strategy="VSwitchOrdered")))
    assert v6.ipv_6address.startswith("2001:db8::") and v6.v_switch_id == "vsw-b"
    assert not v6.internet_ip
    too_many = await refused(eci_call, create_req("sg", security_group_id="sg-1,sg-2,sg-3,sg-4,"
                                                  "sg-5,sg-6"))
    assert "SecurityGroupId" in too_many.message

    fixed = await describe(eci_call, await create(eci_call, create_req("db-0", fixed_ip="true")))
    await eci_call("delete_container_group", m.DeleteContainerGroupRequest(
        region_id="cn-hangzhou", container_group_id=fixed.container_group_id))
    await create(eci_call, create_req("other"))
    again = await describe(eci_call, await create(eci_call, create_req(
        "db-0", fixed_ip="true", client_token="second")))
    assert again.intranet_ip == fixed.intranet_ip
    assert again.container_group_id != fixed.container_group_id


async def pull_state(emulator: Emulator, call: EciCaller, req: Any) -> tuple[str, str]:
    gid = await create(call, req)
    emulator.clock.advance(120)
    state = (await describe(call, gid)).containers[0].current_state
    return state.state, state.message or ""


@pytest.mark.parametrize(("kind", "image", "grant", "refusal"), [
    ("plain_http", "harbor.local:80/app/web:1", {"plain_http_registry": "harbor.local:80"},
     "server gave HTTP response to HTTPS client"),
    ("self_signed", "registry.local/app/web:1", {"insecure_registry": "registry.local"},
     "x509: certificate signed by unknown authority"),
    ("acr", "acme-registry.cn-hangzhou.cr.aliyuncs.com/app/web:1",
     {"acr_registry_info": [m.CreateContainerGroupRequestAcrRegistryInfo(
         instance_id="cri-acme", region_id="cn-hangzhou")]},
     "requires authorization"),
])
async def test_registries_need_what_the_create_says(
        emulator: Emulator, eci_call: EciCaller, kind: str, image: str, grant: dict[str, Any],
        refusal: str) -> None:
    server = image.split("/", 1)[0]
    emulator.add_registry(server, plain_http=kind == "plain_http",
                          self_signed=kind == "self_signed",
                          acr_instance="cri-acme" if kind == "acr" else None)
    state, message = await pull_state(emulator, eci_call, create_req(
        "denied", containers=[ctr(image=image, command=["sleep", "600"])]))
    assert state == "Waiting" and refusal in message
    state, message = await pull_state(emulator, eci_call, create_req(
        "allowed", containers=[ctr(image=image, command=["sleep", "600"])], **grant))
    assert state == "Running", message


async def test_http_control_paths_for_preemption_and_registries(
        emulator: Emulator, eci_call: EciCaller) -> None:
    base = f"http://{emulator.endpoint}/__emulator"
    spot = await create(eci_call, create_req("spot", spot_strategy="SpotAsPriceGo",
                                             spot_duration=0))
    plain = await create(eci_call, create_req("plain"))
    async with aiohttp.ClientSession(headers=emulator.control_headers) as s:
        async with s.post(f"{base}/preempt", json={"group_id": spot}) as r:
            assert r.status == 200
            assert (await r.json())["expires"] == emulator.clock.now() + SPOT_WARNING_S
        for body in ({"group_id": plain}, {"group_id": "eci-nope"}, {}):
            async with s.post(f"{base}/preempt", json=body) as r:
                assert r.status == 400, body
        async with s.post(f"{base}/registries", json={
                "plain_http": ["harbor.local:80"], "self_signed": ["Registry.Local"],
                "acr": {"acme.cn-hangzhou.cr.aliyuncs.com": "cri-acme"}}) as r:
            seen = await r.json()
    assert seen["plain_http"] == ["harbor.local:80"]
    assert seen["self_signed"] == ["registry.local"]
    assert seen["acr"] == {"acme.cn-hangzhou.cr.aliyuncs.com": "cri-acme"}
    assert "acme.cn-hangzhou.cr.aliyuncs.com" in seen["private"]
