"""The emulator's per-action limits: ECI's documented defaults and the ``--rate-limit`` setting."""

from __future__ import annotations

import pytest

from vk_eci.emulator.cli import rate_limits
from vk_eci.emulator.ratelimit import DEFAULT_LIMITS, RateLimiter


def test_status_action_has_its_own_default_limit() -> None:
    assert DEFAULT_LIMITS["DescribeContainerGroupStatus"] == 2000
    t = [0.0]
    limiter = RateLimiter({"DescribeContainerGroupStatus": 3}, other=None, now=lambda: t[0])
    assert [limiter.allow("DescribeContainerGroupStatus") for _ in range(4)] == [
        True, True, True, False]
    assert limiter.allow("DescribeContainerGroups")   # a separate budget
    t[0] = 60.0
    assert limiter.allow("DescribeContainerGroupStatus")


def test_rate_limit_setting() -> None:
    assert rate_limits([]) is None
    limits = rate_limits(["DescribeContainerGroupStatus=500", "CreateContainerGroup=0"])
    assert limits is not None
    assert limits["DescribeContainerGroupStatus"] == 500
    assert "CreateContainerGroup" not in limits
    assert limits["DescribeContainerGroups"] == 2000
    for bad in ("DescribeContainerGroupStatus", "=5", "X=fast"):
        with pytest.raises(ValueError, match="--rate-limit"):
            rate_limits([bad])
