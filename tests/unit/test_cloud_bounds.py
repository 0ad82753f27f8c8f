"""Bounds on what translating one pod builds (vk_eci/cloud/translation/bounds.py).

Each case is an amplification a tenant can write: the pod is refused with an InvalidInput
naming the container/variable/volume and the limit, never the value, and the oversized string
is never built (the expansion stops looking values up once past the bound).
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio.client import (
    V1ConfigMapEnvSource,
    V1ConfigMapKeySelector,
    V1ConfigMapProjection,
    V1ConfigMapVolumeSource,
    V1Container,
    V1DownwardAPIProjection,
    V1DownwardAPIVolumeFile,
    V1DownwardAPIVolumeSource,
    V1EnvFromSource,
    V1EnvVar,
    V1EnvVarSource,
    V1KeyToPath,
    V1LocalObjectReference,
    V1ObjectFieldSelector,
    V1ObjectMeta,
    V1ProjectedVolumeSource,
    V1SecretKeySelector,
    V1Volume,
    V1VolumeProjection,
)

from tests.unit.test_cloud_translate import ctx, pod
from vk_eci.cloud.api.errors import InvalidInput
from vk_eci.cloud.translation import bounds
from vk_eci.cloud.translation.env import expand
from vk_eci.cloud.translation.pod import translate
from vk_eci.provider import ConfigMapData, SecretData

BIG = "v" * 100_000  # a 100 KB ConfigMap value, as in the issue
SECRET = "S3CR3T" * 5_000  # 30 KB of secret


def big_ctx(**kw: Any) -> Any:
    base: dict[str, Any] = dict(
        config_maps={"big": ConfigMapData({"A": BIG, "B": BIG, "small": "x"})},
        secrets={"s": SecretData("Opaque", {"k": SECRET.encode() * 5})}, service_env={})
    return ctx(**{**base, **kw})


def refused(p: Any, c: Any = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        translate(p, c or big_ctx())
    err = info.value
    # Never the value: neither the ConfigMap's nor the secret's content is echoed.
    assert "vvvvvvvv" not in str(err) and "S3CR3T" not in str(err)
    return err


def from_cm(name: str, key: str = "A") -> V1EnvVar:
    return V1EnvVar(name=name, value_from=V1EnvVarSource(
        config_map_key_ref=V1ConfigMapKeySelector(name="big", key=key)))


def test_expansion_stops_at_max_arg_strlen_before_building_more() -> None:
    looked_up = []

    def lookup(name: str) -> str:
        looked_up.append(name)
        return BIG

    with pytest.raises(InvalidInput) as info:
        expand("$(A)" * 5_000, lookup, "container app env B")
    assert info.value.thing == "container app env B"
    assert str(bounds.MAX_STRING) in info.value.reason
    assert "MAX_ARG_STRLEN" in info.value.reason
    # 2 x 100 KB passes 128 KiB: the third value is never looked up, nothing larger is built.
    assert len(looked_up) == 2
    # Under the bound nothing changes: unknown references stay, $$ is $.
    assert expand("$(A)-$(Z)-$$(A)", {"A": "a"}.get) == "a-$(Z)-$(A)"


def test_the_issues_amplification_pod_is_refused_naming_the_variable() -> None:
    # 100 KB value referenced 5,000 times (20 KB of env): 500 MB if built.
    amplify = V1EnvVar(name="B", value="$(A)" * 5_000)
    err = refused(pod([V1Container(name="app", image="nginx", env=[from_cm("A"), amplify])]))
    assert err.thing == "container app env B"
    assert "131072" in err.reason


def test_many_variables_each_under_the_string_bound_hit_the_pod_bound() -> None:
    # 15 x 100 KB = 1.5 MB: each string is fine, the request's total is past the bound.
    env = [from_cm("A")] + [V1EnvVar(name=f"V{i}", value="$(A)") for i in range(15)]
    err = refused(pod([V1Container(name="app", image="nginx", env=env)]))
    assert err.thing == "container app env V9"  # the 11th 100 KB value goes over 1 MiB
    assert "pod shop/web-1" in err.reason and str(bounds.MAX_POD) in err.reason


def test_env_from_the_same_config_map_many_times_hits_the_pod_bound() -> None:
    sources = [V1EnvFromSource(prefix=f"P{i}_", config_map_ref=V1ConfigMapEnvSource(name="big"))
               for i in range(20)]
    err = refused(pod([V1Container(name="app", image="nginx", env_from=sources)]))
    assert err.thing.startswith("container app env P")
    assert str(bounds.MAX_POD) in err.reason


def test_empty_variables_are_charged_their_request_parameters() -> None:
    # 20,000 empty variables from one config map: 60 KB of names, over 1 MiB as parameters.
    many = ConfigMapData({f"K{i}": "" for i in range(20_000)})
    c = V1Container(name="app", image="nginx", env_from=[V1EnvFromSource(
        config_map_ref=V1ConfigMapEnvSource(name="many"))])
    err = refused(pod([c]), ctx(config_maps={"many": many}, service_env={}))
    assert err.thing.startswith("container app env K") and str(bounds.MAX_POD) in err.reason


def test_command_and_args_are_expanded_within_the_bounds() -> None:
    c = V1Container(name="app", image="nginx", env=[from_cm("A")],
                    command=["sh"], args=["-c", "$(A)$(A)"])
    err = refused(pod([c]))
    assert err.thing == "container app args[1]"
    c = V1Container(name="app", image="nginx", env=[from_cm("A")],
                    args=["$(A)"] * 25)
    err = refused(pod([c]))
    assert err.thing == "container app args[9]" and str(bounds.MAX_POD) in err.reason


def test_one_value_over_the_string_bound_is_refused_even_unexpanded() -> None:
    c = V1Container(name="app", image="nginx", env=[V1EnvVar(
        name="K", value_from=V1EnvVarSource(secret_key_ref=V1SecretKeySelector(
            name="s", key="k")))])
    err = refused(pod([c]))  # 150 KB secret value: would fail execve
    assert err.thing == "container app env K" and "MAX_ARG_STRLEN" in err.reason


def test_redefining_a_variable_gives_its_bytes_back() -> None:
    # Defined 40 times over (4 MB if counted each time), 100 KB in the end: fine.
    env = [from_cm("X") for _ in range(40)]
    request = translate(pod([V1Container(name="app", image="nginx", env=env)]),
                        big_ctx()).request
    [var] = request.container[0].environment_var
    assert var.key == "X" and var.value == BIG


def test_the_pod_bound_counts_every_container_and_volume() -> None:
    # Two containers of 500 KB each fit; a third, or the volume beside them, goes over.
    env = [from_cm("A")] + [V1EnvVar(name=f"V{i}", value="$(A)") for i in range(4)]
    containers = [V1Container(name=f"c{i}", image="nginx", env=env) for i in range(3)]
    c = big_ctx(config_maps={"big": ConfigMapData({"A": BIG}), **FILES})
    translate(pod(containers[:2]), c)
    err = refused(pod(containers), c)
    assert err.thing.startswith("container c2 env")
    assert "pod shop/web-1" in err.reason and str(bounds.MAX_POD) in err.reason
    volumes = [cm_volume(f"v{i}", "f30") for i in range(3)]
    err = refused(pod(containers[:2], volumes=volumes), c)
    assert err.thing.startswith("volume v") and str(bounds.MAX_POD) in err.reason


def cm_volume(name: str, *keys: str) -> V1Volume:
    return V1Volume(name=name, config_map=V1ConfigMapVolumeSource(
        name="files", items=[V1KeyToPath(key=k, path=k) for k in keys] or None))


FILES = {"files": ConfigMapData({"f30": "a" * 31_000, "g30": "b" * 31_000,
                                 "h40": "c" * 40_000, "small": "x"})}


def test_a_config_file_larger_than_eci_allows_is_refused_naming_the_file() -> None:
    err = refused(pod(volumes=[cm_volume("cfg", "h40")]), ctx(config_maps=FILES))
    assert err.thing == "volume cfg file h40"
    assert str(bounds.MAX_VOLUME_FILE) in err.reason


def test_a_config_file_volume_larger_than_eci_allows_is_refused() -> None:
    translate(pod(volumes=[cm_volume("cfg", "f30", "small")]), ctx(config_maps=FILES))
    err = refused(pod(volumes=[cm_volume("cfg", "f30", "g30")]), ctx(config_maps=FILES))
    assert err.thing == "volume cfg file g30"
    assert "volume cfg" in err.reason and str(bounds.MAX_VOLUME) in err.reason


def test_projected_sources_are_counted_as_they_are_added() -> None:
    # The same config map projected 1,000 times: refused at the second source, not built.
    sources = [V1VolumeProjection(config_map=V1ConfigMapProjection(
        name="files", items=[V1KeyToPath(key="f30", path=f"p{i}")])) for i in range(1_000)]
    vol = V1Volume(name="proj", projected=V1ProjectedVolumeSource(sources=sources))
    err = refused(pod(volumes=[vol]), ctx(config_maps=FILES))
    assert err.thing == "volume proj file p1"


def test_downward_api_items_are_counted_as_they_are_built() -> None:
    # 25 KB of annotations written 1,000 times into one volume.
    meta = V1ObjectMeta(name="web-1", namespace="shop", uid="u",
                        annotations={"a": "z" * 25_000})
    items = [V1DownwardAPIVolumeFile(path=f"a{i}", field_ref=V1ObjectFieldSelector(
        field_path="metadata.annotations")) for i in range(1_000)]
    vol = V1Volume(name="info", downward_api=V1DownwardAPIVolumeSource(items=items))
    err = refused(pod(metadata=meta, volumes=[vol]))
    assert err.thing == "volume info file a2"
    projected = V1Volume(name="pinfo", projected=V1ProjectedVolumeSource(sources=[
        V1VolumeProjection(downward_api=V1DownwardAPIProjection(items=items))]))
    err = refused(pod(metadata=meta, volumes=[projected]))
    assert err.thing == "volume pinfo file a2"


def test_pull_secret_registries_count_toward_the_request() -> None:
    import json

    auths = {f"r{i}.example.com": {"username": "u", "password": "p" * 200}
             for i in range(5_000)}
    secret = SecretData("kubernetes.io/dockerconfigjson",
                        {".dockerconfigjson": json.dumps({"auths": auths}).encode()})
    p = pod(image_pull_secrets=[V1LocalObjectReference(name="many")] * 1_000)
    err = refused(p, ctx(secrets={"many": secret}))
    assert err.thing.startswith("image pull secret credential for r")
    assert "ppppp" not in str(err) and str(bounds.MAX_POD) in err.reason
