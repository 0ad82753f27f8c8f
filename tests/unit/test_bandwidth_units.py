"""``kubernetes.io/ingress-bandwidth`` / ``egress-bandwidth`` as ECI reads them
(docs/ANNOTATIONS.md, "Bandwidth"): the value is bytes per second (``40M`` is 40 MB/s,
320 Mbit/s) in ECI's own spellings or a Kubernetes quantity, and ``IngressBandwidth`` /
``EgressBandwidth`` take bytes per second, so the number goes through unscaled."""

from __future__ import annotations

import pytest

from vk_eci.cloud.placement.annotations import parse_placement
from vk_eci.cloud.placement.values import Bad, bandwidth


@pytest.mark.parametrize(("text", "bytes_per_s"), [
    ("40M", 40_000_000),        # ECI's example: 40 MB/s = 320 Mbit/s
    ("10M", 10_000_000),
    ("40MB", 40_000_000),
    ("2048", 2048),              # no unit: bytes
    ("100B", 100),
    ("1.5k", 1500),
    ("100K", 100_000),
    ("100KB", 100_000),
    ("1G", 10**9), ("1GB", 10**9), ("1T", 10**12), ("1TB", 10**12),
    ("512Ki", 524_288),          # Kubernetes' binary suffixes are exact
    ("40Mi", 41_943_040), ("1Gi", 2**30), ("1Ti", 2**40),
    (" 40M ", 40_000_000),
])
def test_bandwidth_is_bytes_per_second(text: str, bytes_per_s: int) -> None:
    assert bandwidth(text) == bytes_per_s


@pytest.mark.parametrize("text", ["", "0", "0.4", "-1", "40m", "40Mbps", "40 M", "M", "1e6",
                                  "40Mb", "40mi"])
def test_not_a_bandwidth(text: str) -> None:
    with pytest.raises(Bad, match="bytes per second"):
        bandwidth(text)


def test_the_request_carries_the_bytes_per_second() -> None:
    placement = parse_placement({"kubernetes.io/ingress-bandwidth": "40M",
                                 "kubernetes.io/egress-bandwidth": "512Ki"})
    assert not placement.problems
    assert placement.fields["ingress_bandwidth"] == 40_000_000
    assert placement.fields["egress_bandwidth"] == 524_288
