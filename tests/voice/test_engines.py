"""The offline engines, really run: espeak-ng (Debian) and Piper (PyPI, with its bundled voice)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio

from callflow.voice import EspeakNg, Piper, Text, TtsError, synthesis_count


def _level(samples: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def test_espeak_synthesizes_speech(espeak: EspeakNg) -> None:
    before = synthesis_count()
    audio = espeak.synthesize(Text("Your balance is forty two dollars."))
    assert synthesis_count() == before + 1
    assert audio.sample_rate == 22050
    assert 1.0 < audio.duration_s < 5.0
    assert _level(audio.samples) > 300  # speech, not silence


def test_espeak_reads_ssml_breaks(espeak: EspeakNg) -> None:
    plain = espeak.synthesize(Text("one two"))
    paused = espeak.synthesize(Text('<speak>one <break time="1500ms"/> two</speak>'))
    assert paused.duration_s - plain.duration_s > 1.0


def test_espeak_digits_are_read_one_by_one(espeak: EspeakNg) -> None:
    number = espeak.synthesize(Text("<speak>4071</speak>"))  # four thousand seventy-one
    digits = espeak.synthesize(Text('<speak><say-as interpret-as="digits">4071</say-as></speak>'))
    assert digits.duration_s != pytest.approx(number.duration_s, abs=0.05)


def test_text_starting_with_a_dash_is_spoken_not_an_option(espeak: EspeakNg) -> None:
    audio = espeak.synthesize(Text("--version is not an option"))
    assert audio.duration_s > 1.0


async def test_espeak_streams_chunks_that_join_to_the_whole(espeak: EspeakNg) -> None:
    text = Text("Thank you for calling. Your order has shipped.")
    chunks = [chunk async for chunk in espeak.stream(text)]
    assert len(chunks) >= 2
    assert chunks[0].duration_s == pytest.approx(0.25, abs=1e-3)
    joined = np.concatenate([c.samples for c in chunks])
    assert np.array_equal(joined, espeak.synthesize(text).samples)


async def test_closing_a_stream_early_kills_the_program(
    espeak: EspeakNg, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[trio.Process] = []
    real = trio.lowlevel.open_process

    async def spy(*args: Any, **kwargs: Any) -> trio.Process:
        process = await real(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(trio.lowlevel, "open_process", spy)
    stream = espeak.stream(Text("word " * 400))
    first = await stream.__anext__()
    assert first.duration_s > 0
    assert started[0].returncode is None  # still synthesising the rest
    await stream.aclose()  # type: ignore[attr-defined]
    assert started[0].returncode is not None  # killed and reaped


def test_a_missing_program_says_what_to_install() -> None:
    from callflow.voice import TtsUnavailable

    with pytest.raises(TtsUnavailable, match="apt-get install espeak-ng"):
        EspeakNg(program="espeak-ng-not-here")


def test_a_failing_program_is_a_tts_error(espeak: EspeakNg) -> None:
    failing = EspeakNg(program="false")  # exits 1 whatever it is given
    with pytest.raises(TtsError, match="exited with code 1"):
        failing.synthesize(Text("hello"))


def test_piper_synthesizes_with_its_bundled_voice(piper: Piper) -> None:
    audio = piper.synthesize(Text("Your balance is forty two dollars."))
    assert audio.sample_rate == piper.sample_rate == 22050
    assert 1.0 < audio.duration_s < 5.0
    assert _level(audio.samples) > 300


def test_piper_gets_ssml_as_words_and_silence(piper: Piper) -> None:
    audio = piper.synthesize(Text('<speak>one<break time="1s"/>two</speak>'))
    rate = audio.sample_rate
    # somewhere in it, a whole second of digital silence: the break
    silent = np.convolve(audio.samples == 0, np.ones(rate - 10), mode="valid")
    assert silent.max() >= rate - 10


async def test_piper_streams(piper: Piper) -> None:
    chunks = [c async for c in piper.stream(Text("Hello there."))]
    assert chunks
    assert sum(c.duration_s for c in chunks) > 0.5
