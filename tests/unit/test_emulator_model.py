"""The emulator's named guesses about ECI (docs/EMULATOR.md): parsing, and what each changes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from vk_eci.emulator.cli import rate_limits
from vk_eci.emulator.errors import throttled
from vk_eci.emulator.faults import KNOWN
from vk_eci.emulator.model import EciModel
from vk_eci.emulator.ratelimit import RateLimiter
from vk_eci.emulator.timing import go_duration

ROOT = Path(__file__).resolve().parents[2]


def test_every_option_is_in_the_docs_table() -> None:
    table = (ROOT / "docs" / "EMULATOR.md").read_text()
    for f in dataclasses.fields(EciModel):
        assert re.search(rf"^\| `{f.name}` \|", table, re.M), f.name


def test_parse_over_the_defaults() -> None:
    model = EciModel.parse(["auto_create=partial", "status-limit=500",
                            "acr_endpoints_fold=false", "terminal_keep_s=60"])
    assert (model.auto_create, model.status_limit, model.acr_endpoints_fold,
            model.terminal_keep_s) == ("partial", 500, False, 60.0)
    assert model.describe() == ("auto_create=partial, acr_endpoints_fold=False, "
                                "status_limit=500, terminal_keep_s=60.0")
    assert EciModel.of({"rate_window": "fixed"}).rate_window == "fixed"
    assert EciModel().describe() == "defaults"
    for bad in ("auto_create=sometimes", "nope=1", "status_limit=many", "auto_create",
                "acr_endpoints_fold=yes"):
        with pytest.raises(ValueError, match=r"auto_create|nope|status_limit|acr_endpoints"):
            EciModel.parse([bad])


def test_status_limit_feeds_the_rate_limits() -> None:
    limits = rate_limits(["CreateContainerGroup=5"], EciModel(status_limit=700))
    assert limits is not None and limits["DescribeContainerGroupStatus"] == 700


def test_fixed_window_resets_at_the_minute() -> None:
    t = [30.0]
    sliding = RateLimiter({"A": 2}, other=None, now=lambda: t[0])
    fixed = RateLimiter({"A": 2}, other=None, now=lambda: t[0], window="fixed")
    for limiter in (sliding, fixed):
        assert [limiter.allow("A") for _ in range(3)] == [True, True, False]
    t[0] = 61.0   # a new calendar minute, but only 31 s later
    assert fixed.allow("A") and not sliding.allow("A")
    with pytest.raises(ValueError, match="window"):
        RateLimiter({}, window="rolling")


def test_throttling_codes_the_emulator_can_answer() -> None:
    assert throttled("X").code == "Throttling.User"
    err = throttled("X", "Throttling")
    assert (err.code, err.status) == ("Throttling", 400)
    assert KNOWN["Throttling.Vcpu.PerDay"][0] == 403


@pytest.mark.parametrize(("seconds", "text"), [
    (0.85, "850ms"), (47.0, "47s"), (101.289, "1m41.289s"), (60.0, "1m0s"),
    (3602.5, "1h0m2.5s"), (1.5, "1.5s"), (0.0, "0s"),
])
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
