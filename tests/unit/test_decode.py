"""The fast decoder makes the very objects the client's own deserializer makes."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vk_eci.cluster.kube.decode import DecodingApiClient, decode

POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {
        "name": "web-0", "namespace": "shop", "uid": "8f0c", "resourceVersion": "123",
        "creationTimestamp": "2026-11-29T01:02:03Z",
        "deletionTimestamp": "2026-11-29T01:05:00+01:00", "deletionGracePeriodSeconds": 30,
        "labels": {"app": "web"}, "annotations": {"k8s.aliyun.com/eci-image-cache": "true"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                             "uid": "u1", "controller": True}],
        "managedFields": [{"manager": "kubectl", "operation": "Update",
                           "time": "2026-11-29T01:02:03Z",
                           "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
    "spec": {
        "nodeName": "vk", "restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
        "tolerations": [{"operator": "Exists", "tolerationSeconds": 300}],
        "containers": [{
            "name": "c", "image": "nginx:1.27", "command": ["nginx"], "args": ["-g", "x"],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
            "securityContext": {"privileged": False, "runAsUser": 1000}}],
        "volumes": [{"name": "v", "projected": {"sources": [
            {"configMap": {"name": "cm", "items": [{"key": "a", "path": "a"}]}},
            {"serviceAccountToken": {"expirationSeconds": 3600, "path": "token"}}]}}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "type", "operator": "In", "values": ["virtual-kubelet"]}]}]}}}},
    "status": {
        "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
        "startTime": "2026-11-29T01:02:04.123456Z",
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2026-11-29T01:02:09Z", "lastProbeTime": None}],
        "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "nginx",
                               "imageID": "", "started": True,
                               "state": {"running": {"startedAt": "2026-11-29T01:02:08Z"}}}]},
}


def bare(klass: type) -> Any:
    """An API client without its HTTP side (which wants an event loop): (de)serializing
    never touches it."""
    return klass.__new__(klass)


def client_decode(data: Any, kind: str) -> Any:
    return bare(client.ApiClient).deserialize(SimpleNamespace(data=json.dumps(data)), kind)


def test_a_pod_decodes_as_the_client_decodes_it() -> None:
    ours, theirs = decode(POD, "V1Pod"), client_decode(POD, "V1Pod")
    assert isinstance(ours, client.V1Pod)
    assert ours == theirs
    assert ours.to_dict() == theirs.to_dict()
    assert bare(client.ApiClient).sanitize_for_serialization(ours) == \
        bare(client.ApiClient).sanitize_for_serialization(theirs)
    # Timestamps are the same instants, timezone-aware, whatever the offset written.
    assert ours.metadata.deletion_timestamp == dt.datetime(2026, 11, 29, 0, 5, tzinfo=dt.UTC)
    assert ours.status.start_time.microsecond == 123456
    assert ours.spec.containers[0].env[1].value_from.secret_key_ref.key == "k"
    assert ours.metadata.managed_fields[0].fields_v1 == {"f:spec": {"f:containers": {}}}
    # Fields that were absent read None, like the client's models.
    assert ours.spec.host_network is None and ours.metadata.generate_name is None


def test_lists_and_maps_and_primitives() -> None:
    listing = {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"},
               "items": [POD, POD]}
    assert decode(listing, "V1PodList") == client_decode(listing, "V1PodList")
    assert decode({"a": "1", "b": "2"}, "dict(str, str)") == {"a": "1", "b": "2"}
    assert decode([1, 2], "list[int]") == [1, 2]
    assert decode(7, "str") == "7"  # as the client: converted to the declared type
    assert decode(None, "V1Pod") is None


def test_timestamps_not_in_rfc3339_still_parse_and_garbage_is_an_error() -> None:
    assert decode("Sun, 29 Nov 2026 01:02:03 GMT", "datetime") == \
        client_decode("Sun, 29 Nov 2026 01:02:03 GMT", "datetime")
    with pytest.raises(ApiException, match="as datetime"):
        decode("not a time", "datetime")


def _sample(kind: str, depth: int) -> Any:
    """A value of every field (nested models to ``depth``) for type ``kind``."""
    if m := re.fullmatch(r"list\[(.*)\]", kind):
        return [_sample(m.group(1), depth)]
    if m := re.fullmatch(r"dict\(([^,]*), (.*)\)", kind):
        return {"k": _sample(m.group(2), depth)}
    simple = {"str": "s", "int": 3, "float": 1.5, "bool": True, "object": {"o": [1]},
              "datetime": "2026-11-29T01:02:03Z", "date": "2026-11-29"}
    if kind in simple:
        return simple[kind]
    if depth == 0:
        return {}
    klass = getattr(client.models, kind, None)
    if klass is None:  # a name the client's own models lack: the client cannot decode it
        return {"unresolvable": True}
    return {klass.attribute_map[a]: _sample(t, depth - 1) for a, t in klass.openapi_types.items()}


MODELS = sorted(name for name, k in inspect.getmembers(client.models, inspect.isclass)
                if getattr(k, "openapi_types", None) and name.startswith(("V1", "V2", "Core")))


def test_every_model_decodes_as_the_client_decodes_it() -> None:
    """Each model with every field set (nested to a few levels), wherever the client itself
    takes the sample: its validation refuses some (a required field left empty at the
    deepest level, a type name it cannot resolve); those are not a comparison."""
    compared = 0
    for name in MODELS:
        data = _sample(name, 4)
        try:
            theirs = client_decode(data, name)
        except (ValueError, AttributeError):
            continue
        ours = decode(data, name)
        assert ours == theirs, name
        # The same state behind each private field the client's constructor sets (ours keeps
        # only the fields present; the others read as None from its lean class), and an
        # instance of the client's class.
        assert isinstance(ours, type(theirs)), name
        assert all(getattr(ours, k) == v for k, v in vars(theirs).items()
                   if k != "local_vars_configuration"), name
        compared += 1
    assert compared >= 0.7 * len(MODELS), (compared, len(MODELS))


def test_the_api_client_uses_it() -> None:
    api = bare(DecodingApiClient)
    ours = api.deserialize(SimpleNamespace(data=json.dumps(POD)), "V1Pod")
    assert ours == client_decode(POD, "V1Pod")
    assert api.deserialize(SimpleNamespace(data="plain text"), "str") == "plain text"


def test_decoded_models_keep_only_present_fields_and_share_recurring_strings() -> None:
    """What the informer keeps per pod: no slot for each absent field, one copy of a string
    that every pod repeats."""
    one, two = (decode(json.loads(json.dumps(POD)), "V1Pod") for _ in range(2))
    spec_fields = {client.V1PodSpec.attribute_map[a] for a in client.V1PodSpec.openapi_types}
    present = {k for k in POD["spec"] if k in spec_fields}
    assert len(vars(one.spec)) == len(present) + 1  # + local_vars_configuration
    assert one.spec.host_network is None and "hostNetwork" not in POD["spec"]
    assert one.spec.containers[0].image is two.spec.containers[0].image
