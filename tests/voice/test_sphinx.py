"""The offline closed-set recognizer on speech synthesised by the offline engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from callflow.audio import Audio, decode
from callflow.protocol import Format
from callflow.voice import EspeakNg, Piper, Text
from callflow.voice._errors import SttError
from callflow.voice._sphinx import SoundSwallower, grammar
from callflow.voice._stt import SttResult

CHOICES = ["sales", "support", "operator"]


class frames_of:
    """``audio`` as the caller's frames through the stream's codec, 20 ms each (an iterator
    the recognizer may stop reading at any point, as it does a call's inbound audio)."""

    def __init__(self, audio: Audio, fmt: Format, *, lead_s: float = 0.5, tail_s: float = 1.5):
        wire = Audio(decode(audio.encoded(fmt), fmt), fmt.sample_rate).samples
        rate = fmt.sample_rate
        pcm = np.concatenate(
            [np.zeros(int(lead_s * rate), np.int16), wire, np.zeros(int(tail_s * rate), np.int16)]
        )
        step = rate // 50
        self._frames = [pcm[i : i + step] for i in range(0, len(pcm), step)]

    def __aiter__(self) -> frames_of:
        return self

    async def __anext__(self) -> Any:
        if not self._frames:
            raise StopAsyncIteration
        return self._frames.pop(0)


@pytest.fixture(scope="module")
def stt() -> SoundSwallower:
    return SoundSwallower()


def test_grammar_is_the_set_of_phrases_among_fillers() -> None:
    assert grammar(["Sales", "the Operator!"]) == (
        "#JSGF V1.0;\ngrammar choices;\npublic <choice> = sales | the operator;\n"
    )
    assert grammar(["sales"], ["okay", "please"]) == (
        "#JSGF V1.0;\ngrammar choices;\n"
        "public <choice> = [<other>+] (sales) [<other>+] | <other>+;\n"
        "<other> = okay | please;\n"
    )
    with pytest.raises(SttError, match="no words"):
        grammar(["123"])


@pytest.mark.parametrize("fmt", [Format.MULAW_8K, Format.L16_16K])
@pytest.mark.parametrize("word", CHOICES)
async def test_a_spoken_choice_is_recognised(
    stt: SoundSwallower, piper: Piper, fmt: Format, word: str
) -> None:
    partials: list[SttResult] = []
    result = await stt.recognize(
        frames_of(piper.synthesize(Text(word)), fmt),
        fmt.sample_rate,
        hints=CHOICES,
        on_partial=partials.append,
    )
    assert result is not None
    assert result.final
    assert result.text == word
    assert partials[0] == SttResult("", 0.0, final=False)  # speech started


@pytest.mark.parametrize("words", ["banana", "elephant", "what is the weather", "good morning"])
async def test_speech_outside_the_set_is_rejected(
    stt: SoundSwallower, piper: Piper, words: str
) -> None:
    result = await stt.recognize(
        frames_of(piper.synthesize(Text(words)), Format.MULAW_8K), 8000, hints=CHOICES
    )
    assert result is not None
    assert result.final
    assert result.text == ""


async def test_a_choice_among_other_words_is_found(stt: SoundSwallower, piper: Piper) -> None:
    result = await stt.recognize(
        frames_of(piper.synthesize(Text("operator please")), Format.MULAW_8K),
        8000,
        hints=CHOICES,
    )
    assert result is not None
    assert result.text == "operator"


async def test_espeak_speech_is_recognised_by_a_plain_grammar(espeak: EspeakNg) -> None:
    plain = SoundSwallower(reject_others=False)  # espeak's voice is too unlike a caller's
    result = await plain.recognize(
        frames_of(espeak.synthesize(Text("operator")), Format.MULAW_8K), 8000, hints=CHOICES
    )
    assert result is not None
    assert result.text == "operator"


async def test_silence_gives_no_result(stt: SoundSwallower) -> None:
    result = await stt.recognize(
        frames_of(Audio.silence(0.1, 8000), Format.MULAW_8K), 8000, hints=CHOICES
    )
    assert result is None


async def test_a_word_the_dictionary_lacks_is_named(stt: SoundSwallower) -> None:
    with pytest.raises(SttError, match="no xyzzyq"):
        await stt.recognize(
            frames_of(Audio.silence(0.1, 8000), Format.MULAW_8K), 8000, hints=["xyzzyq"]
        )
