"""The render cache: content-addressed, synthesised once, encoded once per format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trio
import trio.lowlevel

from callflow.audio import Audio, encode_count
from callflow.protocol import Format
from callflow.voice import RenderCache, Renderer, Text, synthesis_count


class CountingTts:
    """A deterministic engine (a tone per character) that counts its work."""

    name = "counting 1"
    default_voice = "v1"
    supports_ssml = False

    def __init__(self) -> None:
        self.calls = 0
        self.stopped = 0

    def synthesize(self, text: Text) -> Audio:
        self.calls += 1
        rate = 16000
        t = np.arange(rate // 10 * len(text.text)) / rate
        return Audio((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), rate)

    async def stream(self, text: Text):  # type: ignore[no-untyped-def]
        whole = self.synthesize(text)
        step = whole.sample_rate // 4
        try:
            for start in range(0, len(whole), step):
                await trio.lowlevel.checkpoint()
                yield Audio(whole.samples[start : start + step], whole.sample_rate)
        finally:
            self.stopped += 1


def test_key_depends_on_engine_voice_text_and_ssml() -> None:
    base = RenderCache.key("e1", Text("hi"), "v")
    assert base == RenderCache.key("e1", Text("hi"), "v")
    assert (
        len(
            {
                base,
                RenderCache.key("e2", Text("hi"), "v"),
                RenderCache.key("e1", Text("hi"), "w"),
                RenderCache.key("e1", Text("ho"), "v"),
                RenderCache.key("e1", Text("hi", ssml=True), "v"),
            }
        )
        == 5
    )


def test_second_render_neither_synthesizes_nor_encodes(tmp_path: Path) -> None:
    tts = CountingTts()
    renderer = Renderer(tts, RenderCache(tmp_path))
    text = Text("Welcome")
    first = renderer.render(text, Format.MULAW_8K)
    first.payloads(Format.MULAW_8K)
    encodes = encode_count()
    again = renderer.render(text, Format.MULAW_8K)
    again.payloads(Format.MULAW_8K)
    assert tts.calls == 1
    assert encode_count() == encodes
    assert again is first


def test_another_worker_plays_from_disk_without_encoding(tmp_path: Path) -> None:
    tts = CountingTts()
    Renderer(tts, RenderCache(tmp_path)).render(Text("Welcome"), Format.L16_8K)
    other = Renderer(tts, RenderCache(tmp_path))  # a second process: empty memory, same folder
    encodes = encode_count()
    audio = other.cached(Text("Welcome"), Format.L16_8K)
    assert audio is not None
    audio.payloads(Format.L16_8K)
    assert encode_count() == encodes
    assert tts.calls == 1
    # a format never asked for before is encoded once, then written for the next worker
    assert other.cached(Text("Welcome"), Format.L16_16K) is not None
    assert encode_count() == encodes + 1
    third = RenderCache(tmp_path)
    encodes = encode_count()
    assert third.get(other.key(Text("Welcome")), Format.L16_16K) is not None
    assert encode_count() == encodes


def test_uncached_text_is_synthesized_every_time(tmp_path: Path) -> None:
    tts = CountingTts()
    renderer = Renderer(tts, RenderCache(tmp_path))
    renderer.render(Text("42", cache=False), Format.MULAW_8K)
    renderer.render(Text("42", cache=False), Format.MULAW_8K)
    assert tts.calls == 2
    assert not any(tmp_path.rglob("*.wav"))


async def test_a_streamed_miss_is_kept_once_it_completes(tmp_path: Path) -> None:
    tts = CountingTts()
    renderer = Renderer(tts, RenderCache(tmp_path))
    text = Text("Your balance")
    chunks = [c async for c in renderer.stream(text, Format.MULAW_8K)]
    assert len(chunks) > 1
    cached = renderer.cached(text, Format.MULAW_8K)
    assert cached is not None
    assert cached.duration_s == pytest.approx(sum(c.duration_s for c in chunks))
    assert cached.encoded(Format.MULAW_8K) == b"".join(c.encoded(Format.MULAW_8K) for c in chunks)
    again = [c async for c in renderer.stream(text, Format.MULAW_8K)]
    assert again == [cached]
    assert tts.calls == 1


async def test_a_stream_stopped_early_keeps_nothing_and_stops_the_engine(tmp_path: Path) -> None:
    tts = CountingTts()
    renderer = Renderer(tts, RenderCache(tmp_path))
    text = Text("A long prompt that is interrupted")
    stream = renderer.stream(text, Format.MULAW_8K)
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    assert tts.stopped == 1
    assert renderer.cached(text, Format.MULAW_8K) is None


def test_synthesis_count_counts_real_engines_only_when_they_run(tmp_path: Path) -> None:
    before = synthesis_count()
    Renderer(CountingTts(), RenderCache(tmp_path)).render(Text("x"), Format.MULAW_8K)
    assert synthesis_count() == before  # a test double does not count; the engines do
