"""Raw ``bytes`` prompts are encoded once per format, like an ``Audio``'s payloads."""

from __future__ import annotations

import pytest
import trio.testing
from dslkit import make_flow, tone

from callflow import Call, Format
from callflow.audio import chunk_payloads
from callflow.runtime import _sources
from callflow.runtime._sources import RawPayloadCache
from callflow.testing import FakePlivo

PROMPT = tone(2.0, 440)
RAW = PROMPT.encoded(Format.MULAW_8K)


def test_the_same_bytes_are_encoded_once_per_format() -> None:
    cache = RawPayloadCache()
    first = cache.payloads(RAW, Format.MULAW_8K)
    assert first == chunk_payloads(RAW, Format.MULAW_8K)
    assert cache.payloads(RAW, Format.MULAW_8K) is first
    assert cache.encodings == 1
    # equal content in another object hits too (keyed by content)
    assert cache.payloads(bytes(bytearray(RAW)), Format.MULAW_8K) is first
    assert cache.encodings == 1
    # another format is another entry (an even length reads as L16 too)
    assert cache.payloads(RAW, Format.L16_8K) == chunk_payloads(RAW, Format.L16_8K)
    assert cache.encodings == 2


def test_the_cache_keeps_its_byte_budget_least_recently_used_first() -> None:
    cache = RawPayloadCache(max_bytes=3000)
    a, b, c = b"\x01" * 1000, b"\x02" * 1000, b"\x03" * 1000
    for raw in (a, b, c):
        cache.payloads(raw, Format.MULAW_8K)
    cache.payloads(a, Format.MULAW_8K)  # a is now the most recent
    cache.payloads(b"\x04" * 1000, Format.MULAW_8K)  # evicts b, the least recent
    assert len(cache) == 3
    before = cache.encodings
    cache.payloads(a, Format.MULAW_8K)
    assert cache.encodings == before
    cache.payloads(b, Format.MULAW_8K)
    assert cache.encodings == before + 1


def test_a_prompt_over_the_budget_is_encoded_each_time_and_not_kept() -> None:
    cache = RawPayloadCache(max_bytes=100)
    cache.payloads(RAW, Format.MULAW_8K)
    cache.payloads(RAW, Format.MULAW_8K)
    assert cache.encodings == 2
    assert len(cache) == 0


def test_bytes_that_are_not_whole_samples_are_refused_and_not_cached() -> None:
    cache = RawPayloadCache()
    with pytest.raises(ValueError, match="whole number"):
        cache.payloads(b"\x00" * 3, Format.L16_8K)
    assert len(cache) == 0


async def test_two_calls_playing_one_bytes_prompt_encode_it_once(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RawPayloadCache()
    monkeypatch.setattr(_sources, "_raw_cache", cache)

    async def body(call: Call) -> None:
        await call.say(RAW)

    flow = make_flow(body)
    for _ in range(2):
        async with FakePlivo(flow, send_media=False) as caller:
            await caller.hears(PROMPT)
            await caller.hung_up()
    assert cache.encodings == 1


async def test_a_bytearray_prompt_plays_but_is_not_cached(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RawPayloadCache()
    monkeypatch.setattr(_sources, "_raw_cache", cache)
    mutable = bytearray(RAW)

    async def body(call: Call) -> None:
        await call.say(mutable)

    async with FakePlivo(make_flow(body), send_media=False) as caller:
        await caller.hears(PROMPT)
        await caller.hung_up()
    assert len(cache) == 0
