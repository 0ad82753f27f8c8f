"""ImageCache spec reading, registry credentials from secrets, and the ECI requests built."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from alibabacloud_eci20180808 import models as eci

from vk_eci.cloud.placement.node import Placement
from vk_eci.cluster.imagecaches.spec import (
    TAG_NAME,
    TAG_UID,
    SecretError,
    create_request,
    credentials_from_secret,
    eci_cache_name,
    images_differ,
    parse_secret_ref,
    plan_update,
    spec_from_object,
    update_request,
)

CRD = Path(__file__).parents[2] / "charts/vk-eci/crds/imagecaches.eci.alibabacloud.com.yaml"
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"
SAMPLE: dict[str, Any] = {
    "apiVersion": "eci.alibabacloud.com/v1", "kind": "ImageCache",
    "metadata": {"name": "imagecache-sample", "uid": "u-1", "generation": 3},
    "spec": {"images": ["centos:latest", "busybox:latest"],
             "imagePullSecrets": ["default:secret1", "default:secret2", "kube-system:secret3"],
             "imageCacheSize": 25, "retentionDays": 7},
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dockerconfigjson(auths: dict[str, Any]) -> dict[str, str]:
    return {".dockerconfigjson": b64(json.dumps({"auths": auths}))}


def test_spec_from_the_documentation_sample() -> None:
    spec = spec_from_object(SAMPLE)
    assert spec.name == "imagecache-sample" and spec.uid == "u-1" and spec.generation == 3
    assert spec.images == ("centos:latest", "busybox:latest")
    assert [str(s) for s in spec.secrets] == ["default:secret1", "default:secret2",
                                             "kube-system:secret3"]
    assert spec.size_gib == 25 and spec.retention_days == 7
    tags = spec.tags("c1")
    assert tags[TAG_UID] == "u-1" and tags[TAG_NAME] == "imagecache-sample"
    assert tags["vk-eci.io/cluster"] == "c1"


def test_defaults_size_20_and_no_retention() -> None:
    spec = spec_from_object({"metadata": {"name": "a1"}, "spec": {"images": ["nginx"]}})
    assert spec.size_gib == 20 and spec.retention_days is None and spec.secrets == ()


@pytest.mark.parametrize("images", [[], None, [""], ["  "], "nginx"])
def test_unusable_images_are_named(images: Any) -> None:
    with pytest.raises(ValueError, match=r"spec\.images"):
        spec_from_object({"metadata": {"name": "x"}, "spec": {"images": images}})


@pytest.mark.parametrize("ref", ["nonamespace", ":name", "ns:", ""])
def test_bad_secret_reference_is_named(ref: str) -> None:
    with pytest.raises(SecretError, match=f"image pull secret {ref}"):
        parse_secret_ref(ref)


@pytest.mark.parametrize(("name", "expected"), [
    ("imagecache-sample", "imagecache-sample"),
    ("my.cache.v1", "my-cache-v1"),
    ("a", "a-ic"),
])
def test_eci_cache_name(name: str, expected: str) -> None:
    assert eci_cache_name(name) == expected


def test_long_names_stay_distinct_and_within_128() -> None:
    a, b = eci_cache_name("x" * 200 + "a"), eci_cache_name("x" * 200 + "b")
    assert len(a) <= 128 and len(b) <= 128 and a != b


def test_dockerconfigjson_with_username_password_and_auth() -> None:
    data = dockerconfigjson({
        "https://index.docker.io/v1/": {"username": "u1", "password": "p1"},
        "registry.example.com:5000": {"auth": b64("u2:p:2")},
    })
    creds = credentials_from_secret("default:s", DOCKERCONFIGJSON, data)
    assert [(c.server, c.user_name, c.password) for c in creds] == [
        ("index.docker.io", "u1", "p1"), ("registry.example.com:5000", "u2", "p:2")]
    assert "p1" not in repr(creds)


def test_dockercfg_legacy_format() -> None:
    data = {".dockercfg": b64(json.dumps({"reg.example.com": {"auth": b64("me:pw")}}))}
    (cred,) = credentials_from_secret("ns:old", DOCKERCFG, data)
    assert (cred.server, cred.user_name, cred.password) == ("reg.example.com", "me", "pw")


@pytest.mark.parametrize(("type_", "data", "why"), [
    ("Opaque", {"password": b64("x")}, "is neither kubernetes.io/dockerconfigjson"),
    (DOCKERCONFIGJSON, {"token": b64("x")}, "has no .dockerconfigjson key"),
    (DOCKERCONFIGJSON, {".dockerconfigjson": "!!notbase64"}, "its data is not base64"),
    (DOCKERCONFIGJSON, {".dockerconfigjson": b64("{nope")}, "not valid JSON"),
    (DOCKERCONFIGJSON, {".dockerconfigjson": b64('{"auths": {}}')}, "lists no registry"),
    (DOCKERCONFIGJSON, dockerconfigjson({"r.io": {"auth": b64("nouserhere")}}), "no ':'"),
    (DOCKERCONFIGJSON, dockerconfigjson({"r.io": {"email": "a@b"}}), "neither auth nor"),
])
def test_malformed_secret_errors_name_it_and_hide_data(type_: str, data: dict[str, str],
                                                      why: str) -> None:
    with pytest.raises(SecretError) as info:
        credentials_from_secret("default:secret1", type_, data)
    assert str(info.value).startswith("image pull secret default:secret1: ")
    assert why in str(info.value)
    assert "nouserhere" not in str(info.value)


def test_create_request_carries_everything_and_client_token() -> None:
    spec = spec_from_object(SAMPLE)
    creds = credentials_from_secret("default:s", DOCKERCONFIGJSON, dockerconfigjson(
        {"reg.example.com": {"username": "u", "password": "p"}}))
    where = Placement(region_id="cn-hangzhou", security_group_id="sg-1", vswitch_ids=("vsw-1",))
    req = create_request(spec, creds, where)
    query = req.to_map()
    assert query["ImageCacheName"] == "imagecache-sample"
    assert query["Image"] == ["centos:latest", "busybox:latest"]
    assert query["ImageCacheSize"] == 25 and query["RetentionDays"] == 7
    assert query["ClientToken"] == "u-1-3" and query["RegionId"] == "cn-hangzhou"
    assert query["SecurityGroupId"] == "sg-1" and query["VSwitchId"] == "vsw-1"
    assert query["ImageRegistryCredential"] == [
        {"Server": "reg.example.com", "UserName": "u", "Password": "p"}]
    assert {t["Key"]: t["Value"] for t in query["Tag"]}[TAG_UID] == "u-1"


def test_create_request_without_credentials_or_retention() -> None:
    spec = spec_from_object({"metadata": {"name": "cc", "uid": "u"}, "spec": {"images": ["a"]}})
    query = create_request(spec, []).to_map()
    assert not query.get("ImageRegistryCredential") and "RetentionDays" not in query
    assert query["ImageCacheSize"] == 20


def test_update_request() -> None:
    spec = spec_from_object(SAMPLE)
    query = update_request("imc-1", spec, []).to_map()
    assert query["ImageCacheId"] == "imc-1" and query["Image"] == list(spec.images)


def _eci_cache(size: int = 25, expire: str | None = "2024-05-08T12:00:00Z",
               images: list[str] | None = None) -> eci.DescribeImageCachesResponseBodyImageCaches:
    return eci.DescribeImageCachesResponseBodyImageCaches(
        image_cache_id="imc-1", images=images or ["busybox:latest", "centos:latest"],
        image_cache_size=size, expire_date_time=expire)


def _spec(**fields: Any) -> Any:
    return spec_from_object({**SAMPLE, "spec": {**SAMPLE["spec"], **fields}})


def test_plan_sends_a_grown_size_and_the_retention_but_not_unchanged_images() -> None:
    plan = plan_update(_spec(imageCacheSize=40, retentionDays=30), _eci_cache())
    assert (plan.images, plan.size_gib, plan.retention_days, plan.refused) == \
        (False, 40, 30, ())
    query = update_request("imc-1", _spec(imageCacheSize=40, retentionDays=30), [],
                           plan=plan).to_map()
    assert query["ImageCacheSize"] == 40 and query["RetentionDays"] == 30
    assert "Image" not in query  # re-sending images would make ECI pull them again


def test_plan_refuses_a_smaller_size_naming_the_field() -> None:
    plan = plan_update(_spec(imageCacheSize=20), _eci_cache(size=25))
    assert plan.size_gib is None and plan.retention_days == 7 and plan.sends
    (refused,) = plan.refused
    assert refused.startswith("spec.imageCacheSize:")
    assert "25 to 20 GiB" in refused and "re-created" in refused and "imc-1" in refused


def test_plan_refuses_a_removed_retention_naming_the_field() -> None:
    spec = spec_from_object({**SAMPLE, "spec": {"images": ["busybox:latest", "centos:latest"],
                                                "imageCacheSize": 25}})
    plan = plan_update(spec, _eci_cache())
    assert not plan.sends
    (refused,) = plan.refused
    assert refused.startswith("spec.retentionDays:") and "2024-05-08T12:00:00Z" in refused
    # A cache without expiry already matches a spec without retention.
    assert plan_update(spec, _eci_cache(expire="")).refused == ()


def test_plan_sends_changed_images() -> None:
    plan = plan_update(_spec(), _eci_cache(images=["busybox:latest"]))
    assert plan.images and plan.size_gib is None and plan.refused == ()


def test_images_differ_ignores_order_and_duplicates() -> None:
    assert not images_differ(["a", "b"], ["b", "a", "a"])
    assert images_differ(["a", "b"], ["a"])
    assert images_differ(["a"], None)


# ---- the CRD's schema, checked offline (the integration tests check the API server too) ----

def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def _secret_rule() -> re.Pattern[str]:
    # jsonschema does not run CEL; the one rule is `self.matches('<regex>')`, applied here.
    items = _schema()["properties"]["spec"]["properties"]["imagePullSecrets"]["items"]
    (rule,) = items["x-kubernetes-validations"]
    match = re.fullmatch(r"self\.matches\('(.*)'\)", rule["rule"])
    assert match and "namespace:secretName" in rule["message"]
    return re.compile(match.group(1))


def _valid(spec: dict[str, Any]) -> bool:
    try:
        jsonschema.validate({"spec": spec}, _schema())
    except jsonschema.ValidationError:
        return False
    return all(_secret_rule().search(s) for s in spec.get("imagePullSecrets", []))


def test_crd_shape() -> None:
    crd = yaml.safe_load(CRD.read_text())
    s = crd["spec"]
    assert crd["metadata"]["name"] == "imagecaches.eci.alibabacloud.com"
    assert s["group"] == "eci.alibabacloud.com" and s["scope"] == "Cluster"
    assert s["names"]["kind"] == "ImageCache" and s["names"]["plural"] == "imagecaches"
    assert s["names"]["shortNames"] == ["ic"] and "all" in s["names"]["categories"]
    (v,) = s["versions"]
    assert v["name"] == "v1" and v["subresources"] == {"status": {}}
    cols = {c["name"]: c["jsonPath"] for c in v["additionalPrinterColumns"]}
    assert cols == {"Age": ".metadata.creationTimestamp", "CacheId": ".status.imageCacheId",
                    "Phase": ".status.phase", "Progress": ".status.progress"}
    status = v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for field in ("phase", "progress", "imageCacheId", "startTime", "lastUpdatedTime",
                  "events", "expireDateTime", "conditions"):
        assert field in status


def test_crd_schema_accepts_the_sample_and_refuses_bad_specs() -> None:
    assert _valid(SAMPLE["spec"])
    assert _valid({"images": ["a"] * 20})
    assert not _valid({})
    assert not _valid({"images": []})
    assert not _valid({"images": ["a"] * 21})
    assert not _valid({"images": [""]})
    assert not _valid({"images": ["a"], "imageCacheSize": 10})
    assert not _valid({"images": ["a"], "imageCacheSize": 32769})
    assert not _valid({"images": ["a"], "retentionDays": 0})
    assert not _valid({"images": ["a"], "retentionDays": 65537})
    assert not _valid({"images": ["a"], "imagePullSecrets": ["nonamespace"]})
    assert not _valid({"images": ["a"], "imagePullSecrets": ["Default:S"]})


def test_cache_annotations_are_read_or_refused_by_name() -> None:
    import pytest as _pytest

    from vk_eci.cluster.imagecaches.annotations import parse_cache_annotations

    k = "k8s.aliyun.com/"
    options = parse_cache_annotations({k + "vswitch-ids": "vsw-a,vsw-b",
                                       k + "imc-enable-flash": "true",
                                       k + "acr-instance-ids": "cri-1"})
    assert options.fields == {"v_switch_id": "vsw-a,vsw-b", "flash": True}
    assert [a.instance_id for a in options.acr] == ["cri-1"]
    for key, value, says in ((k + "imc-os-type", "windows", "only Linux"),
                             (k + "security-group-id", "sg-1,sg-2", "sg-"),
                             (k + "acr-user-arns", "acs:ram::1:role/r", "applies only"),
                             (k + "imc-enable-reuse", "yes", "true")):
        with _pytest.raises(ValueError) as info:
            parse_cache_annotations({key: value})
        assert key in str(info.value) and says in str(info.value), info.value


def test_refresh_is_due_when_asked_or_the_period_passed() -> None:
    from datetime import UTC, datetime, timedelta

    import pytest as _pytest

    from vk_eci.cluster.imagecaches import refresh as r

    now = datetime(2026, 1, 2, tzinfo=UTC)
    built = {"startTime": (now - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert r.refresh_due({}, built, now) is None
    assert r.refresh_due({r.REFRESH: ""}, built, now) == f"asked for by {r.REFRESH}"
    assert r.refresh_due({r.REFRESH_PERIOD: "24h"}, built, now) is not None
    assert r.refresh_due({r.REFRESH_PERIOD: "2d"}, built, now) is None
    recent = {**built, "lastRefreshTime": (now - timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")}
    assert r.refresh_due({r.REFRESH_PERIOD: "24h"}, recent, now) is None
    for bad in ("5m", "1w", "24"):
        with _pytest.raises(ValueError, match=r.REFRESH_PERIOD):
            r.refresh_period({r.REFRESH_PERIOD: bad})
