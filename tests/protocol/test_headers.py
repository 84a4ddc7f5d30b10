"""ExtraHeaders: the three forms of ``extra_headers`` (PROTOCOL.md §2) as one read-only mapping."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import pytest

from callflow.protocol import ExtraHeaders


@pytest.mark.parametrize(
    "raw",
    [
        "userId=12345;sessionId=abc-xyz",
        "userId=12345,sessionId=abc-xyz",
        '{"userId": "12345", "sessionId": "abc-xyz"}',
        " userId = 12345 ; sessionId= abc-xyz ;",
    ],
)
def test_the_forms_read_the_same(raw: str) -> None:
    headers = ExtraHeaders.parse(raw)
    assert dict(headers) == {"userId": "12345", "sessionId": "abc-xyz"}
    assert headers.raw == raw


@pytest.mark.parametrize("raw", ["{}", "", "   ", ";", ",,", "{ }"])
def test_empty_forms(raw: str) -> None:
    headers = ExtraHeaders.parse(raw)
    assert len(headers) == 0
    assert headers.raw == raw
    assert headers == ExtraHeaders.EMPTY


def test_missing_is_empty() -> None:
    assert ExtraHeaders.parse(None) is ExtraHeaders.EMPTY
    assert ExtraHeaders.EMPTY.raw == "{}"


def test_semicolons_win_over_commas() -> None:
    assert dict(ExtraHeaders.parse("a=1,2;b=3")) == {"a": "1,2", "b": "3"}


def test_entries_without_equals_are_kept_with_an_empty_value() -> None:
    assert dict(ExtraHeaders.parse("vip;tier=gold")) == {"vip": "", "tier": "gold"}


def test_value_keeps_later_equals_signs() -> None:
    assert ExtraHeaders.parse("token=a=b==")["token"] == "a=b=="


def test_empty_keys_are_dropped_and_the_last_repeat_wins() -> None:
    assert dict(ExtraHeaders.parse("=x;a=1;a=2")) == {"a": "2"}


def test_values_are_not_percent_decoded() -> None:
    assert ExtraHeaders.parse("name=John%20Doe")["name"] == "John%20Doe"


def test_json_object_values_become_text() -> None:
    headers = ExtraHeaders.parse('{"a": 1, "b": true, "c": null, "d": "x", "e": [1, 2]}')
    assert dict(headers) == {"a": "1", "b": "true", "c": "", "d": "x", "e": "[1,2]"}


def test_broken_json_falls_back_to_pairs() -> None:
    assert dict(ExtraHeaders.parse("{a=1;b=2")) == {"{a": "1", "b": "2"}


def test_mapping_interface() -> None:
    headers = ExtraHeaders.parse("a=1;b=2")
    assert isinstance(headers, Mapping)
    assert headers["a"] == "1"
    assert list(headers) == ["a", "b"]
    assert len(headers) == 2
    assert "a" in headers
    assert "z" not in headers
    assert headers.get("z") is None
    assert headers.get("z", "d") == "d"
    assert list(headers.items()) == [("a", "1"), ("b", "2")]
    with pytest.raises(KeyError):
        headers["z"]


def test_read_only() -> None:
    headers = ExtraHeaders.parse("a=1")
    with pytest.raises(TypeError):
        headers["a"] = "2"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        headers.raw = "b=2"  # type: ignore[misc]


def test_equality_is_by_content_and_hash_agrees() -> None:
    semi, comma = ExtraHeaders.parse("a=1;b=2"), ExtraHeaders.parse("a=1,b=2")
    assert semi == comma
    assert hash(semi) == hash(comma)
    assert semi == {"a": "1", "b": "2"}
    assert semi != {"a": "1"}
    assert semi != "a=1;b=2"
    assert len({semi, comma, ExtraHeaders("a=1;b=2")}) == 1


def test_constructor_parses_too() -> None:
    assert ExtraHeaders("a=1") == {"a": "1"}


def test_parse_is_cached_by_string() -> None:
    raw = "callRef=abc123;tier=gold"
    assert ExtraHeaders.parse(raw) is ExtraHeaders.parse(raw)
