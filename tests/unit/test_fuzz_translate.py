"""Property-based fuzzing of Pod → ECI translation: ``translate(pod, ctx)``.

The strategy builds ``V1Pod`` objects with everything translation reads: containers and init
containers (sidecars too), env with literal ``$(VAR)`` values and every ``valueFrom``, envFrom,
command/args, ports, probes, lifecycle hooks, resources, security contexts, volume mounts,
volumes of every type (supported or not), DNS, host aliases, pull secrets, placement and cache
annotations, owners. Any pod gives a request or a named error (:class:`InvalidInput`, or
:class:`MissingDependency` for a mandatory object that does not exist), never another
exception; a request respects the ECI limits translation claims. Bounded for CI.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_asyncio.client import (
    V1Capabilities,
    V1ConfigMapEnvSource,
    V1ConfigMapKeySelector,
    V1ConfigMapProjection,
    V1ConfigMapVolumeSource,
    V1Container,
    V1ContainerPort,
    V1DownwardAPIProjection,
    V1DownwardAPIVolumeFile,
    V1DownwardAPIVolumeSource,
    V1EmptyDirVolumeSource,
    V1EnvFromSource,
    V1EnvVar,
    V1EnvVarSource,
    V1ExecAction,
    V1HostAlias,
    V1HostPathVolumeSource,
    V1HTTPGetAction,
    V1KeyToPath,
    V1Lifecycle,
    V1LifecycleHandler,
    V1LocalObjectReference,
    V1NFSVolumeSource,
    V1ObjectFieldSelector,
    V1ObjectMeta,
    V1OwnerReference,
    V1PersistentVolumeClaimVolumeSource,
    V1Pod,
    V1PodDNSConfig,
    V1PodDNSConfigOption,
    V1PodSecurityContext,
    V1PodSpec,
    V1Probe,
    V1ProjectedVolumeSource,
    V1ResourceFieldSelector,
    V1ResourceRequirements,
    V1SecretEnvSource,
    V1SecretKeySelector,
    V1SecretProjection,
    V1SecretVolumeSource,
    V1SecurityContext,
    V1ServiceAccountTokenProjection,
    V1Sysctl,
    V1TCPSocketAction,
    V1Volume,
    V1VolumeMount,
    V1VolumeProjection,
)

from tests.unit.test_cloud_translate import ctx
from tests.unit.test_fuzz_annotations import annotation_maps
from vk_eci.cloud.api.errors import InvalidInput, MissingDependency
from vk_eci.cloud.translation import bounds
from vk_eci.cloud.translation.pod import MAX_CONTAINERS, translate
from vk_eci.cloud.translation.volumes import MAX_VOLUMES
from vk_eci.provider import ClaimData, ConfigMapData, SecretData

NAMES = ["app", "side", "init", "a", "b-1", "x" * 70]
OBJECTS = ["cm", "s", "missing", "big"]  # config maps / secrets, some absent
KEYS = ["k", "MODE", "bad key", "missing", "blob"]
VOLS = ["v1", "v2", "v3", "nope"]

names = st.sampled_from(NAMES) | st.text(max_size=8)


def rare(strategy: Any, one_in: int = 12) -> Any:
    """``strategy`` about once in ``one_in`` draws, else None: refusals that end translation
    early (hostPath, hostNetwork, privileged…) must not hide everything after them."""
    # Hypothesis favours the ends of a range, so the chosen draw is one in the middle.
    return st.integers(1, one_in).flatmap(
        lambda i: strategy if i == one_in // 2 else st.none())
small_ints = st.none() | st.integers(-2, 100) | st.sampled_from([2**31, -(2**40)])
quantities = st.sampled_from(["0", "1", "250m", "0.5", "2", "64", "65", "512Mi", "2Gi", "1e3",
                              "1e999", "-1", "x", "1.5Gi", "0.001", "3", "7Gi", "1Ti",
                              "1e-30", "1n", "1e-9999", "1e999999999Ki", "1e-999999999m",
                              "9" * 30, ".", "1.", ".5", "+1", "1E3", "0e0"])
texts = (st.text(max_size=12)
         | st.builds("".join, st.lists(st.sampled_from(
             ["$(A)", "$(MODE)", "$$", "$(", ")", "$(k)", "x", "$(BIG)"]), max_size=6)))
field_paths = st.sampled_from([
    "metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
    "metadata.annotations", "metadata.labels['app']", "metadata.annotations['a']",
    "spec.nodeName", "spec.serviceAccountName", "status.podIP", "status.hostIP",
    "status.podIPs", "status.phase", "spec.x", ""])
resource_refs = st.builds(
    V1ResourceFieldSelector, container_name=st.none() | st.sampled_from(NAMES),
    resource=st.sampled_from(["limits.cpu", "limits.memory", "requests.cpu",
                              "requests.memory", "limits.ephemeral-storage", "limits.gpu",
                              "cpu", "x"]),
    divisor=st.none() | quantities)


def key_selector(cls: Any) -> Any:
    return st.builds(cls, name=st.sampled_from(OBJECTS), key=st.sampled_from(KEYS),
                     optional=st.none() | st.booleans())


value_sources = st.one_of(
    st.builds(V1EnvVarSource, field_ref=st.builds(V1ObjectFieldSelector, field_path=field_paths)),
    st.builds(V1EnvVarSource, resource_field_ref=resource_refs),
    st.builds(V1EnvVarSource, secret_key_ref=key_selector(V1SecretKeySelector)),
    st.builds(V1EnvVarSource, config_map_key_ref=key_selector(V1ConfigMapKeySelector)),
    rare(st.just(V1EnvVarSource())).map(lambda v: v or V1EnvVarSource(
        field_ref=V1ObjectFieldSelector(field_path="metadata.name"))))
env_vars = st.builds(V1EnvVar, name=st.sampled_from(["A", "MODE", "BIG", "k", "1bad"]) | names,
                     value=st.none() | texts, value_from=st.none() | value_sources)
env_from = st.builds(
    V1EnvFromSource, prefix=st.none() | st.sampled_from(["P_", "1", ""]),
    config_map_ref=st.none() | st.builds(V1ConfigMapEnvSource, name=st.sampled_from(OBJECTS),
                                         optional=st.none() | st.booleans()),
    secret_ref=st.none() | st.builds(V1SecretEnvSource, name=st.sampled_from(OBJECTS),
                                     optional=st.none() | st.booleans()))
ports = st.builds(V1ContainerPort, container_port=st.integers(-1, 70000),
                  name=st.none() | st.sampled_from(["http", "grpc", ""]),
                  protocol=st.none() | st.sampled_from(["TCP", "UDP", "SCTP", "tcp", "x"]))
port_refs = st.integers(-1, 70000) | st.sampled_from(["http", "8080", "nope", "", "\u0663"])
exec_actions = st.builds(V1ExecAction, command=st.none() | st.lists(texts, max_size=3))
probe_actions = st.one_of(
    st.builds(dict, _exec=exec_actions),
    st.builds(dict, http_get=st.builds(V1HTTPGetAction, port=port_refs,
                                       path=st.none() | st.text(max_size=6),
                                       scheme=st.none() | st.sampled_from(["HTTP", "HTTPS"]))),
    st.builds(dict, tcp_socket=st.builds(V1TCPSocketAction, port=port_refs)),
    rare(st.just({})).map(lambda v: v or {"tcp_socket": V1TCPSocketAction(port=80)}))
probes = st.builds(
    lambda action, **kw: V1Probe(**action, **kw), probe_actions,
    initial_delay_seconds=small_ints, period_seconds=small_ints,
    failure_threshold=small_ints, timeout_seconds=small_ints, success_threshold=small_ints)
handlers = st.builds(
    V1LifecycleHandler, _exec=st.none() | exec_actions,
    http_get=st.none() | st.builds(V1HTTPGetAction, port=port_refs,
                                   host=st.none() | st.just("h")),
    tcp_socket=st.none() | st.builds(V1TCPSocketAction, port=port_refs))
resources = st.builds(
    V1ResourceRequirements,
    limits=st.none() | st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu",
                                                        "ephemeral-storage"]), quantities,
                                       max_size=3),
    requests=st.none() | st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]),
                                         quantities, max_size=3))
security = st.builds(
    V1SecurityContext, privileged=rare(st.just(True)), run_as_user=small_ints,
    run_as_group=small_ints, run_as_non_root=st.none() | st.booleans(),
    read_only_root_filesystem=st.none() | st.booleans(),
    allow_privilege_escalation=st.none() | st.booleans(),
    capabilities=st.none() | st.builds(
        V1Capabilities, add=st.none() | st.lists(st.sampled_from(["NET_ADMIN", "SYS_TIME"]),
                                                 max_size=2),
        drop=st.none() | st.just(["ALL"])))
mounts = st.builds(V1VolumeMount, name=st.sampled_from(VOLS), mount_path=st.just("/m"),
                   sub_path=st.none() | st.just("sub"), read_only=st.none() | st.booleans())
images = st.sampled_from(["nginx:1.25", "nginx", "busybox@sha256:" + "a" * 64, "Bad/Ref",
                          "reg.io:5000/x/y:latest", ""]) | st.text(max_size=10)


def containers(init: bool = False) -> Any:
    return st.builds(
        V1Container, name=names, image=images,
        command=st.none() | st.lists(texts, max_size=3),
        args=st.none() | st.lists(texts, max_size=3),
        env=st.none() | st.lists(env_vars, max_size=5),
        env_from=st.none() | st.lists(env_from, max_size=2),
        ports=st.none() | st.lists(ports, max_size=2),
        readiness_probe=st.none() | probes, liveness_probe=st.none() | probes,
        startup_probe=st.none() | probes,
        lifecycle=st.none() | st.builds(V1Lifecycle, post_start=st.none() | handlers,
                                        pre_stop=st.none() | handlers),
        resources=rare(resources, 3), security_context=st.none() | security,
        volume_mounts=rare(st.lists(mounts, max_size=2), 3),
        working_dir=st.none() | st.just("/w"),
        image_pull_policy=st.none() | st.sampled_from(["Always", "IfNotPresent", "Never"]),
        restart_policy=st.sampled_from([None, "Always"]) if init else st.none(),
        stdin=st.none() | st.booleans(), tty=st.none() | st.booleans())


items = st.none() | st.lists(st.builds(V1KeyToPath, key=st.sampled_from(KEYS),
                                       path=st.sampled_from(["p", "q", "p"]),
                                       mode=st.none() | st.integers(0, 511)), max_size=3)
downward_items = st.lists(st.builds(
    V1DownwardAPIVolumeFile, path=st.sampled_from(["f", "g"]),
    field_ref=st.none() | st.builds(V1ObjectFieldSelector, field_path=field_paths),
    resource_field_ref=st.none() | resource_refs), max_size=3)
projections = st.one_of(
    st.builds(V1VolumeProjection, secret=st.builds(
        V1SecretProjection, name=st.sampled_from(OBJECTS), items=items,
        optional=st.none() | st.booleans())),
    st.builds(V1VolumeProjection, config_map=st.builds(
        V1ConfigMapProjection, name=st.sampled_from(OBJECTS), items=items,
        optional=st.none() | st.booleans())),
    st.builds(V1VolumeProjection, downward_api=st.builds(V1DownwardAPIProjection,
                                                         items=downward_items)),
    st.builds(V1VolumeProjection, service_account_token=st.builds(
        V1ServiceAccountTokenProjection, path=st.just("token"),
        expiration_seconds=st.sampled_from([None, 3607, 600]),
        audience=st.none() | st.just("vault"))),
    st.just(V1VolumeProjection()))
volume_sources = st.one_of(
    st.builds(dict, empty_dir=st.builds(V1EmptyDirVolumeSource,
                                        medium=st.none() | st.sampled_from(["", "Memory"]),
                                        size_limit=st.none() | quantities)),
    st.builds(dict, config_map=st.builds(V1ConfigMapVolumeSource, name=st.sampled_from(OBJECTS),
                                         items=items, optional=st.none() | st.booleans(),
                                         default_mode=st.none() | st.integers(0, 511))),
    st.builds(dict, secret=st.builds(V1SecretVolumeSource, secret_name=st.sampled_from(OBJECTS),
                                     items=items, optional=st.none() | st.booleans())),
    st.builds(dict, downward_api=st.builds(V1DownwardAPIVolumeSource, items=downward_items)),
    st.builds(dict, projected=st.builds(V1ProjectedVolumeSource,
                                        sources=st.lists(projections, max_size=3))),
    st.builds(dict, nfs=st.builds(V1NFSVolumeSource, server=st.just("nas"), path=st.just("/"))),
    st.builds(dict, persistent_volume_claim=st.builds(
        V1PersistentVolumeClaimVolumeSource,
        claim_name=st.sampled_from(["nfs", "disk", "pending", "weird", "missing"]))),
    rare(st.builds(dict, host_path=st.builds(V1HostPathVolumeSource, path=st.just("/etc"))),
         20).map(lambda v: v or {}))
volumes = st.builds(lambda name, source: V1Volume(name=name, **source),
                    st.sampled_from(VOLS), volume_sources)


@st.composite
def pods(draw: Any) -> V1Pod:
    app = draw(st.lists(containers(), min_size=1, max_size=3) | rare(st.just([]), 20).map(
        lambda v: [] if v == [] else [V1Container(name="app", image="nginx")]))
    if draw(st.integers(0, 9)) == 0:  # now and then past ECI's 20 containers
        app = app * draw(st.integers(7, 11))
    spec = V1PodSpec(
        containers=app, init_containers=draw(st.none() | st.lists(containers(True), max_size=2)),
        volumes=draw(st.none() | st.lists(volumes, max_size=4)
                     | rare(st.lists(volumes, min_size=21, max_size=22), 8)),
        restart_policy=draw(st.none() | st.sampled_from(["Always", "OnFailure", "Never"])),
        termination_grace_period_seconds=draw(small_ints),
        active_deadline_seconds=draw(small_ints),
        hostname=draw(st.none() | st.just("h")),
        share_process_namespace=draw(st.none() | st.booleans()),
        image_pull_secrets=draw(st.none() | st.lists(st.builds(
            V1LocalObjectReference, name=st.sampled_from(["regcred", "missing", ""])),
            max_size=2)),
        dns_policy=draw(st.none() | st.sampled_from(["ClusterFirst", "Default", "None",
                                                     "ClusterFirstWithHostNet", "Bogus"])),
        dns_config=draw(st.none() | st.builds(
            V1PodDNSConfig, nameservers=st.none() | st.just(["1.1.1.1"]),
            searches=st.none() | st.just(["a.b"]),
            options=st.none() | st.lists(st.builds(V1PodDNSConfigOption,
                                                   name=st.sampled_from(["ndots", "edns0"]),
                                                   value=st.none() | st.just("2")),
                                         max_size=2))),
        host_aliases=draw(st.none() | st.lists(st.builds(
            V1HostAlias, ip=st.just("10.0.0.9"), hostnames=st.none() | st.just(["x"])),
            max_size=1)),
        security_context=draw(st.none() | st.builds(
            V1PodSecurityContext, run_as_user=small_ints, fs_group=small_ints,
            sysctls=st.none() | st.lists(st.builds(V1Sysctl, name=st.just("net.core.somaxconn"),
                                                   value=st.just("1024")), max_size=1))),
        enable_service_links=draw(st.none() | st.booleans()),
        host_network=draw(rare(st.just(True), 30)),
        service_account_name=draw(st.none() | st.just("builder")),
        node_name="virtual-kubelet")
    owners = draw(st.none() | st.lists(st.builds(
        V1OwnerReference, api_version=st.just("apps/v1"),
        kind=st.sampled_from(["ReplicaSet", "Job", "ReplicaSet", "Job", "DaemonSet"]),
        name=st.just("o"),
        uid=st.just("o-1")), max_size=1))
    meta = V1ObjectMeta(name=draw(st.sampled_from(["web-1", "x" * 63])),
                        namespace=draw(st.sampled_from(["shop", None])), uid="uid-1",
                        labels=draw(st.none() | st.just({"app": "web"})),
                        annotations=draw(rare(annotation_maps, 4)),
                        owner_references=owners)
    return V1Pod(metadata=meta, spec=spec)


BIG = "b" * 40_000
CONTEXT = ctx(
    config_maps={"cm": ConfigMapData({"k": "v", "MODE": "$(A)", "bad key": "x"},
                                     {"blob": b"\x00\x01"}),
                 "big": ConfigMapData({"k": BIG, "blob": BIG * 3, "MODE": "m"})},
    secrets={"s": SecretData("Opaque", {"k": b"secret-value", "blob": b"\xff" * 10}),
             "regcred": SecretData("kubernetes.io/dockerconfigjson",
                                   {".dockerconfigjson": b'{"auths": {}}'})},
    claims={"nfs": ClaimData("Bound", "pv1", "nfs", {"server": "nas", "path": "/d"}),
            "disk": ClaimData("Bound", "pv2", "csi", {
                "driver": "diskplugin.csi.alibabacloud.com", "volumeHandle": "d-1"},
                capacity="1e999"),
            "pending": ClaimData("Pending"),
            "weird": ClaimData("Bound", "pv3", "iscsi")},
    service_account_tokens={(None, 3607): "TOKEN", ("vault", 600): "T2"},
    cluster_dns=("10.96.0.10",))


def _check_limits(request: Any) -> None:
    """The limits translation claims, on the request it built."""
    apps, inits = request.container or [], request.init_container or []
    assert len(apps) >= 1 and len(apps) + len(inits) <= MAX_CONTAINERS
    assert len(request.volume or []) <= MAX_VOLUMES
    total = 0
    for c in [*apps, *inits]:
        for var in c.environment_var or []:
            size = bounds.size_of(var.key) + 2 + bounds.size_of(var.value or "")
            assert size <= bounds.MAX_STRING
            total += size
        for text in [*(c.command or []), *(c.arg or [])]:
            assert bounds.size_of(text) < bounds.MAX_STRING
            total += bounds.size_of(text) + 1
    for vol in request.volume or []:
        if vol.config_file_volume is not None:
            files = [len(base64.b64decode(f.content))
                     for f in vol.config_file_volume.config_file_to_path]
            assert all(f <= bounds.MAX_VOLUME_FILE for f in files)
            assert sum(files) <= bounds.MAX_VOLUME
            total += sum(files)
    assert total <= bounds.MAX_POD
    request.to_map()  # and the SDK can encode it


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.data_too_large])
@given(pods())
def test_any_pod_translates_to_a_request_within_ecis_limits_or_a_named_error(p: V1Pod) -> None:
    try:
        translation = translate(p, CONTEXT)
    except (InvalidInput, MissingDependency) as err:
        assert err.thing and err.reason
        assert "secret-value" not in str(err) and "TOKEN" not in str(err)
        return
    _check_limits(translation.request)
    for warning in translation.warnings:
        assert warning.reason and warning.message
        assert "secret-value" not in warning.message


def test_what_the_fuzzer_found_in_quantities_is_named_or_rounded_as_kubernetes_does() -> None:
    # Before: decimal.Overflow from parse_quantity, a 10,000-digit resourceFieldRef value that
    # str() refused (ValueError), decimal.DivisionImpossible in the ephemeral-storage parser.
    from vk_eci.cloud.placement.specs import parse_quantity

    for text in ("1e999", "1e999999999Ki", "9" * 30):
        try:
            parse_quantity(text, "limits.memory")
        except InvalidInput as err:
            assert err.thing == "limits.memory" and text in err.reason
        else:
            raise AssertionError(f"{text} accepted")
    assert str(parse_quantity("1e-9999")) == "1E-9"  # rounded up to Kubernetes' nano
    ref = V1ResourceFieldSelector(resource="limits.cpu", divisor="1e-9999")
    env = [V1EnvVar(name="CPU", value_from=V1EnvVarSource(resource_field_ref=ref))]
    app = V1Container(name="app", image="nginx", env=env,
                      resources=V1ResourceRequirements(limits={"cpu": "2"}))
    p = V1Pod(metadata=V1ObjectMeta(name="p", namespace="ns", uid="u"),
              spec=V1PodSpec(containers=[app], enable_service_links=False))
    [var] = translate(p, CONTEXT).request.container[0].environment_var
    assert var.value == "2000000000"
