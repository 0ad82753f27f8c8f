"""The emulator's cache choice (written from ECI's documents) against the node's matcher.

The two share no code. Where ECI's documents give a rule the node does not apply, the test
encodes it: ECI first keeps only caches whose size satisfies the instance's temporary storage
(the model's default reading: size >= the instance's EphemeralStorage), and the node's matcher
does not know the instance. Any other disagreement is a finding (docs/EMULATOR.md).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from matcher import CacheIndex, normalize_image
from vk_eci.emulator import matching
from vk_eci.emulator.caches import Build, Cache
from vk_eci.emulator.model import EciModel
from vk_eci.emulator.reference import acr_fold, normalize

NOW = 1_700_000_000.0
MODEL = EciModel()

REGISTRIES = ["", "docker.io/", "index.docker.io/", "registry-1.docker.io/", "Docker.IO/",
              "registry.cn-hangzhou.aliyuncs.com/", "registry-vpc.cn-hangzhou.aliyuncs.com/",
              "registry-internal.cn-hangzhou.aliyuncs.com/", "localhost:5000/",
              "acme-registry.cn-beijing.cr.aliyuncs.com/",
              "acme-registry-vpc.cn-beijing.cr.aliyuncs.com/", "quay.io/"]
REPOS = ["nginx", "redis", "library/nginx", "team/app", "a.b/c-d__e"]
TAGS = ["", ":latest", ":1.25", ":v1_2"]
DIGEST = "@sha256:" + "ab" * 32

refs = st.builds(lambda r, p, t, d: r + p + (DIGEST if d else t),
                 st.sampled_from(REGISTRIES), st.sampled_from(REPOS), st.sampled_from(TAGS),
                 st.booleans())


@given(refs)
def test_references_agree(ref: str) -> None:
    # "a.b/c-d__e" on Docker Hub names a registry host "a.b": both read it so.
    assert acr_fold(normalize(ref)) == normalize_image(ref)


def _cache(i: int, images: list[str], size: int, created: float, ready: bool) -> Cache:
    build = Build(started=created, images=images, prepared=created, pulls=[],
                  ready_at=created if ready else None)
    return Cache(f"imc-{i:02d}", f"c{i}", "cn-hangzhou", size, None, created, [], "s-", "eci-",
                 builds=[build], norm_images=[normalize(r) for r in images])


caches_st = st.lists(st.tuples(st.lists(refs, min_size=1, max_size=4),
                               st.sampled_from([20, 25, 30, 50, 100]),
                               st.integers(0, 3), st.booleans()), max_size=8)


@given(caches_st, st.lists(refs, min_size=1, max_size=4), st.sampled_from([0, 0, 0, 25, 40]),
       st.integers(1, 3), st.booleans())
def test_choice_agrees_with_the_matcher(specs: list[tuple[list[str], int, int, bool]],
                                        pod: list[str], extra: int, need: int,
                                        full: bool) -> None:
    caches = [_cache(i, imgs, size, NOW - 100 * age, ready)
              for i, (imgs, size, age, ready) in enumerate(specs)]
    index = CacheIndex()
    for c in caches:
        if c.status(NOW) == "Ready" and c.size_gib >= extra:  # ECI's size rule (see above)
            index.upsert(c.id, [normalize_image(r) for r in c.images], size_gib=c.size_gib,
                         created_at=c.created)
    node = [(m.cache_id, m.matched, m.total) for m in index.rank(
        [normalize_image(r) for r in pod], limit=20, min_matched=need, require_all=full,
        now=NOW)]
    eci = [(c.cache.id, c.matched, c.total) for c in matching.rank(
        caches, [normalize(r) for r in pod], NOW, MODEL, extra_storage_gib=extra,
        min_matched=need, require_all=full)]
    assert eci == node


def test_fits_instance_reading_prefers_the_largest_cache_that_fits() -> None:
    caches = [_cache(1, ["nginx"], 20, NOW, True), _cache(2, ["nginx"], 30, NOW, True),
              _cache(3, ["nginx"], 50, NOW, True)]
    model = EciModel(cache_size_rule="fits-instance")
    got = [c.cache.id for c in matching.rank(caches, [normalize("nginx")], NOW, model)]
    assert got == ["imc-02", "imc-01"]          # 50 GiB exceeds 30 GiB of temporary storage
    got = [c.cache.id for c in matching.rank(caches, [normalize("nginx")], NOW, model,
                                             extra_storage_gib=20)]
    assert got == ["imc-03", "imc-02", "imc-01"]


def test_acr_endpoints_apart_when_the_model_says_so() -> None:
    cache = _cache(1, ["registry.cn-hangzhou.aliyuncs.com/a/b:1"], 20, NOW, True)
    pod = [normalize("registry-vpc.cn-hangzhou.aliyuncs.com/a/b:1")]
    assert [c.matched for c in matching.rank([cache], pod, NOW, MODEL)] == [1]
    apart = EciModel(acr_endpoints_fold=False)
    assert matching.rank([cache], pod, NOW, apart) == []
