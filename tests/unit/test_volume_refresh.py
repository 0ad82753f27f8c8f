"""The pure parts of the opt-in file refresh (vk_eci/cloud/provider_refresh.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes_asyncio.client import (
    V1ConfigMapProjection,
    V1ConfigMapVolumeSource,
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ProjectedVolumeSource,
    V1ServiceAccountTokenProjection,
    V1Volume,
    V1VolumeMount,
    V1VolumeProjection,
)

from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.placement.node import Placement
from vk_eci.cloud.provider_refresh import (
    ANNOTATION,
    changed,
    config_files,
    opted_in,
    token_due,
    volume_update,
)
from vk_eci.cloud.translation.context import TranslateContext
from vk_eci.cloud.translation.pod import translate
from vk_eci.provider import ConfigMapData

AUDIENCE = ("vault", 3600)


def pod(annotations: dict[str, str] | None = None) -> V1Pod:
    projected = V1ProjectedVolumeSource(sources=[
        V1VolumeProjection(service_account_token=V1ServiceAccountTokenProjection(
            path="token", audience="vault", expiration_seconds=3600)),
        V1VolumeProjection(config_map=V1ConfigMapProjection(name="extra"))])
    return V1Pod(
        metadata=V1ObjectMeta(name="web", namespace="shop", uid="u1", annotations=annotations),
        spec=V1PodSpec(containers=[V1Container(name="main", image="nginx", volume_mounts=[
            V1VolumeMount(name="conf", mount_path="/etc/conf"),
            V1VolumeMount(name="ids", mount_path="/var/run/ids")])],
            volumes=[V1Volume(name="conf", config_map=V1ConfigMapVolumeSource(name="conf")),
                     V1Volume(name="ids", projected=projected)]))


def jwt(iat: int, exp: int) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"iat": iat, "exp": exp}).encode())
    return f"e30.{claims.decode().rstrip('=')}.sig"


def render(conf: str, extra: str = "x", token: str = "t1") -> Any:
    ctx = TranslateContext(
        placement=Placement(region_id="cn-hangzhou", zone_id="cn-hangzhou-k",
                            vswitch_ids=("vsw-a",), security_group_id="sg-1"),
        cluster_name="c", node_name="n",
        config_maps={"conf": ConfigMapData({"a.txt": conf}),
                     "extra": ConfigMapData({"b.txt": extra})},
        service_account_tokens={AUDIENCE: token})
    return translate(pod(), ctx).request


@pytest.mark.parametrize(("value", "wanted"), [(None, False), ("restart", True),
                                               (" Restart ", True), ("never", False)])
def test_the_annotation_opts_in_only_with_restart(value: str | None, wanted: bool) -> None:
    assert opted_in(pod(None if value is None else {ANNOTATION: value})) is wanted


def test_a_bad_annotation_value_is_a_named_error() -> None:
    with pytest.raises(InvalidInput) as err:
        opted_in(pod({ANNOTATION: "always"}))
    assert err.value.event == "InvalidAnnotation"
    assert ANNOTATION in str(err.value) and "restart" in str(err.value)


def test_only_the_volumes_whose_files_changed_are_found() -> None:
    before = config_files(pod(), render("one"))
    assert set(before) == {"conf", "ids"}
    assert changed(before, config_files(pod(), render("one"))) == []
    assert changed(before, config_files(pod(), render("two"))) == ["conf"]
    assert changed(before, config_files(pod(), render("one", extra="y"))) == ["ids"]
    assert changed(before, config_files(pod(), render("one", token="t2"))) == ["ids"]
    assert changed(before, config_files(pod(), render("two", token="t2"))) == ["conf", "ids"]


def test_the_injected_proxy_volume_is_not_the_pods_own() -> None:
    request = render("one")
    request.volume.append(type(request.volume[0])(name="vk-eci-kube-proxy",
                                                  type="ConfigFileVolume"))
    assert "vk-eci-kube-proxy" not in config_files(pod(), request)


def test_a_token_is_due_at_80_percent_of_its_life() -> None:
    assert token_due(jwt(1000, 4600), issued=5000) == 1000 + 0.8 * 3600
    # After a node restart its life is counted from the group's creation when that is earlier.
    assert token_due(jwt(1000, 4600), issued=400) == 400 + 0.8 * 3600
    # No JWT: an hour from when it was issued.
    assert token_due("opaque", issued=100) == 100 + 0.8 * 3600


def test_the_update_gives_only_the_changed_volumes_whole() -> None:
    update = volume_update("eci-1", render("two"), ["conf"])
    assert (update.container_group_id, update.update_type) == ("eci-1", "IncrementalUpdate")
    assert [v.name for v in update.volume] == ["conf"]
    assert not update.container and not update.init_container
    [item] = update.volume[0].config_file_volume.config_file_to_path
    assert (item.path, base64.b64decode(item.content)) == ("a.txt", b"two")


def test_an_opted_in_pods_short_token_is_not_warned_as_never_refreshed() -> None:
    from vk_eci.cloud.translation.tokens import expiry_warning

    source = V1ServiceAccountTokenProjection(path="token", audience="vault",
                                             expiration_seconds=3600)
    assert expiry_warning(jwt(0, 3600), source, "ids", None) is not None
    assert expiry_warning(jwt(0, 3600), source, "ids", None, refreshed=True) is None
