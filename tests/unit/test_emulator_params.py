"""Decoding the SDK's flattened query into nested dicts and lists."""

from __future__ import annotations

import pytest
from alibabacloud_tea_openapi.utils import Utils
from hypothesis import given
from hypothesis import strategies as st

from vk_eci.emulator.errors import ApiError
from vk_eci.emulator.params import (
    get_bool,
    get_int,
    get_json_id_list,
    get_str,
    get_tags,
    unflatten,
)


def test_nested_lists_and_dicts() -> None:
    tree = unflatten({
        "Container.1.Name": "a", "Container.1.Command.1": "sh", "Container.1.Command.2": "-c",
        "Container.2.Name": "b", "Container.2.EnvironmentVar.1.FieldRef.FieldPath": "status.podIP",
        "DnsConfig.NameServer.1": "1.1.1.1", "RegionId": "cn-hangzhou",
    })
    assert tree == {
        "Container": [{"Name": "a", "Command": ["sh", "-c"]},
                      {"Name": "b",
                       "EnvironmentVar": [{"FieldRef": {"FieldPath": "status.podIP"}}]}],
        "DnsConfig": {"NameServer": ["1.1.1.1"]}, "RegionId": "cn-hangzhou",
    }


def test_list_order_follows_indexes_not_arrival() -> None:
    assert unflatten({"Image.2": "b", "Image.10": "j", "Image.1": "a", **{
        f"Image.{i}": str(i) for i in range(3, 10)}})["Image"][:3] == ["a", "b", "3"]


def test_gap_in_list_is_refused() -> None:
    with pytest.raises(ApiError) as e:
        unflatten({"Image.1": "a", "Image.3": "c"})
    assert e.value.code == "InvalidParameter"
    assert "Image" in e.value.message


@given(st.lists(st.dictionaries(st.sampled_from(["Key", "Value"]),
                                st.text(min_size=0, max_size=8), min_size=1), max_size=5))
def test_round_trip_with_the_sdk_flattener(tags: list[dict[str, str]]) -> None:
    flat = Utils.query({"Tag": tags}) if tags else {}
    tree = unflatten(flat)
    assert tree.get("Tag", []) == tags


def test_typed_readers_name_the_field() -> None:
    tree = unflatten({"Limit": "x", "WithEvent": "maybe", "Tag.1.Value": "v"})
    with pytest.raises(ApiError, match="Limit"):
        get_int(tree, "Limit")
    with pytest.raises(ApiError, match="WithEvent"):
        get_bool(tree, "WithEvent")
    with pytest.raises(ApiError) as e:
        get_tags(tree)
    assert e.value.code == "MissingParameter" and "Tag.1.Key" in e.value.message
    with pytest.raises(ApiError) as e:
        get_str(tree, "RegionId", required=True)
    assert e.value.code == "MissingParameter"


def test_bounds_and_booleans() -> None:
    tree = unflatten({"Size": "19", "On": "True", "Off": "false"})
    with pytest.raises(ApiError, match=r"outside 20\.\.32768"):
        get_int(tree, "Size", lo=20, hi=32768)
    assert get_bool(tree, "On") is True and get_bool(tree, "Off") is False
    assert get_bool(tree, "Absent", default=True) is True


def test_json_id_list() -> None:
    assert get_json_id_list({"Ids": '["eci-1","eci-2"]'}, "Ids", max_items=20) == ["eci-1",
                                                                                  "eci-2"]
    with pytest.raises(ApiError, match="at most 20"):
        get_json_id_list({"Ids": str([f"e{i}" for i in range(21)]).replace("'", '"')}, "Ids",
                         max_items=20)
    with pytest.raises(ApiError, match="JSON"):
        get_json_id_list({"Ids": "eci-1"}, "Ids", max_items=20)
