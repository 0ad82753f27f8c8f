"""The advisor's caches of private images (docs/ADVISOR.md "Private images"): what it observes,
keeps across restarts, how it scopes a planned cache to one namespace, and the grants by which
its own ImageCache objects alone may use that namespace's pull secrets."""

from __future__ import annotations

import json

from kubernetes_asyncio.client import V1LocalObjectReference, V1ObjectMeta, V1Pod, V1PodSpec

from vk_eci.advisor.model import Action, Plan, PlannedCache
from vk_eci.advisor.observe import PodObserver
from vk_eci.advisor.persist import decode, encode
from vk_eci.advisor.record import PRIVATE_NAMESPACES, DemandRecord
from vk_eci.advisor.scope import scope_cache, scope_plan
from vk_eci.cloud.caches.annotations import AUTO_KEY
from vk_eci.cluster.imagecaches.secrets import AdvisorGrants

PUBLIC = "docker.io/library/nginx:1.25"
BILLING = "registry.corp.example/team-a/billing:v7"
LEDGER = "registry.corp.example/team-b/ledger:v1"


def pod(namespace: str, secrets: tuple[str, ...] = ()) -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name="p", namespace=namespace, uid=f"uid-{namespace}",
                                       annotations={AUTO_KEY: "true"}),
                 spec=V1PodSpec(containers=[], image_pull_secrets=[
                     V1LocalObjectReference(name=s) for s in secrets] or None))


def planned(*images: str, action: Action = Action.CREATE) -> PlannedCache:
    return PlannedCache("advisor-x", action, tuple(sorted(images)), 20, 100.0, 20.0)


def test_observer_records_which_namespace_pulled_an_image_with_which_secrets() -> None:
    rec = DemandRecord()
    obs = PodObserver(rec, clock=lambda: 1000.0)
    obs.reported(pod("a", ("regcred",)), [PUBLIC, BILLING], None, "miss",
                 frozenset({"registry.corp.example"}))
    obs.reported(pod("b"), [PUBLIC], None, "miss")
    assert rec.private_of(BILLING) == {"a": ("regcred",)}
    assert rec.private_of(PUBLIC) == {}  # a registry the pod had no credentials for


def test_private_pulls_survive_a_restart_and_old_records_still_read() -> None:
    rec = DemandRecord()
    for n in range(PRIVATE_NAMESPACES + 2):
        rec.add_pod([BILLING], 1000.0 + n, private=[BILLING], namespace=f"ns{n}",
                    secrets=("regcred",))
    assert len(rec.private_of(BILLING)) == PRIVATE_NAMESPACES  # bounded, most recent kept
    assert next(iter(rec.private_of(BILLING))) == f"ns{PRIVATE_NAMESPACES + 1}"
    text = encode(rec, 2000.0)
    assert "password" not in text
    back = decode(text)
    assert back.private_of(BILLING) == rec.private_of(BILLING)
    # A record saved before private pulls existed (5-element image entries) reads as public.
    old = json.dumps({"version": 1, "since": 1.0, "savedAt": 2.0,
                      "images": [[BILLING, 1.0, 1, None, 1.0]],
                      "sets": [[[0], 1.0, 0.0, 1.0, 1.0, []]]})
    assert decode(old).private_of(BILLING) == {}
    merged = DemandRecord()
    merged.add_pod([BILLING], 3000.0, private=[BILLING], namespace="new", secrets=("s",))
    merged.merge(back)
    assert next(iter(merged.private_of(BILLING))) == "new"  # ours first, theirs fill
    assert len(merged.private_of(BILLING)) == PRIVATE_NAMESPACES


def test_a_cache_of_private_images_is_scoped_to_one_namespace() -> None:
    private = {BILLING: {"a": ("regcred", "other")}, LEDGER: {"b": ("bcred",)}}
    cache = scope_cache(planned(PUBLIC, BILLING, LEDGER), lambda i: private.get(i, {}))
    # Team A and B each hold one private image; ties go to the first name: A's image, A's
    # secrets, the public image kept, B's private image left out.
    assert cache.images == tuple(sorted([PUBLIC, BILLING]))
    assert cache.pull_secrets == ("a:regcred", "a:other")
    # The namespace holding credentials for the most private images wins.
    private[LEDGER] = {"b": ("bcred",)}
    private["registry.corp.example/team-b/x:1"] = {"b": ("bcred",)}
    cache = scope_cache(planned(BILLING, LEDGER, "registry.corp.example/team-b/x:1"),
                        lambda i: private.get(i, {}))
    assert cache.pull_secrets == ("b:bcred",) and BILLING not in cache.images
    # All public: unchanged, no secrets.
    assert scope_cache(planned(PUBLIC), lambda i: {}) == planned(PUBLIC)


def test_without_a_controller_here_only_public_images_are_planned() -> None:
    private = {BILLING: {"a": ("regcred",)}}
    plan = Plan((planned(PUBLIC, BILLING), PlannedCache("advisor-y", Action.CREATE,
                                                        (BILLING,), 20, 50.0, 20.0)))
    scoped = scope_plan(plan, lambda i: private.get(i, {}), credentials=False)
    # The mixed cache keeps its public image; the all-private one is dropped.
    assert [(c.name, c.images, c.pull_secrets) for c in scoped.caches] == [
        ("advisor-x", (PUBLIC,), ())]


def test_grants_allow_the_advisors_object_only() -> None:
    grants = AdvisorGrants()
    queued: list[str] = []
    grants.listeners.append(queued.append)
    nonce = grants.offer("advisor-x", ["a:regcred"], [BILLING])
    # Before the UID is known: only with the one-time value the advisor wrote.
    assert grants.allows("advisor-x", "uid-1", nonce, "a:regcred", [BILLING])
    assert not grants.allows("advisor-x", "uid-1", "guess", "a:regcred", [BILLING])
    assert not grants.allows("advisor-x", "uid-1", "", "a:regcred", [BILLING])
    grants.bind("advisor-x", "uid-1")
    assert queued == ["advisor-x"]
    assert grants.allows("advisor-x", "uid-1", "", "a:regcred", [BILLING])
    # Another object of the same name (re-created by someone else), another secret, another
    # name, or images beyond the granted ones: refused.
    assert not grants.allows("advisor-x", "uid-2", nonce, "a:regcred", [BILLING])
    assert not grants.allows("advisor-x", "uid-1", "", "a:other", [BILLING])
    assert not grants.allows("advisor-y", "uid-1", "", "a:regcred", [BILLING])
    assert not grants.allows("advisor-x", "uid-1", "", "a:regcred", [BILLING, LEDGER])
    grants.revoke("advisor-x")
    assert not grants.allows("advisor-x", "uid-1", "", "a:regcred", [BILLING])
    # After a restart the advisor renews the grant for the object it owns.
    grants.renew("advisor-x", "uid-1", ["a:regcred"], [BILLING])
    grants.renew("advisor-x", "uid-1", ["a:regcred"], [BILLING])  # unchanged: not queued
    assert queued == ["advisor-x", "advisor-x"]
    assert grants.allows("advisor-x", "uid-1", "", "a:regcred", [BILLING])
