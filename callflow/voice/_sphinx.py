"""An offline closed-set recognizer: SoundSwallower (PocketSphinx) with a JSGF grammar.

The ``soundswallower`` wheel ships its US English acoustic model and dictionary, so nothing is
downloaded. The grammar is the set of phrases asked for (``choices``/``hints``): anything else
is rejected (a final result with empty text), which is what a menu wants.
"""

from __future__ import annotations

import collections
import functools
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from callflow.voice._errors import SttError, SttUnavailable
from callflow.voice._stt import Frames, PartialHandler, SttResult
from callflow.voice._vadmodel import SpeechDetector

__all__ = ["SoundSwallower", "default_stt", "grammar"]

_WORD = re.compile(r"[a-z']+")


def _phrase_words(phrase: str) -> list[str]:
    return _WORD.findall(phrase.lower())


_FILLERS = tuple(
    [
        "what",
        "that",
        "yes",
        "she",
        "they",
        "this",
        "have",
        "can",
        "for",
        "not",
        "with",
        "hello",
        "good",
        "morning",
        "please",
        "thank",
        "okay",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "zero",
    ]
)
"""Common words that soak up speech outside the choices (a garbage model): a caller saying
something else is heard as fillers and rejected, instead of forced onto the nearest choice.
Words of one or two letters are left out: they soak up the choices too."""


def grammar(phrases: Sequence[str], fillers: Sequence[str] = ()) -> str:
    """A JSGF grammar accepting one of ``phrases`` (lower-cased, words only), optionally
    among ``fillers`` (``I want sales please``), or ``fillers`` alone (something else).

    Raises:
        SttError: no phrase, or a phrase with no words.
    """
    alternatives = []
    for phrase in phrases:
        words = _phrase_words(phrase)
        if not words:
            raise SttError(f"cannot recognise {phrase!r}: it has no words")
        alternatives.append(" ".join(words))
    if not alternatives:
        raise SttError("a grammar needs at least one phrase")
    head = "#JSGF V1.0;\ngrammar choices;\n"
    choice = " | ".join(alternatives)
    if not fillers:
        return head + f"public <choice> = {choice};\n"
    return (
        head
        + f"public <choice> = [<other>+] ({choice}) [<other>+] | <other>+;\n"
        + f"<other> = {' | '.join(fillers)};\n"
    )


def _choice_in(text: str, phrases: Sequence[str]) -> str:
    """The phrase whose words appear, in order and together, in the recognised ``text``
    (the longest, when several do), or ``""``."""
    words = text.split()
    best = ""
    for phrase in phrases:
        wanted = _phrase_words(phrase)
        n = len(wanted)
        if any(words[i : i + n] == wanted for i in range(len(words) - n + 1)):
            joined = " ".join(wanted)
            best = joined if len(joined) > len(best) else best
    return best


class SoundSwallower:
    """Recognises one of a closed set of phrases, offline (SoundSwallower, US English).

    Speech is found by a VAD (:class:`~callflow.voice.SpeechDetector`, the model VAD by
    default); the utterance ends after ``hangover_s`` of silence or ``max_utterance_s``.
    Partial results come every ``partial_every_s``. Decoders are built in a worker thread
    (about 0.2 s each) and reused, so the call's thread only feeds them frames (about 0.1 ms
    of CPU per 20 ms frame).

    Args:
        language: the model folder shipped in the wheel (``"en-us"``).
        min_confidence: a final result below this is rejected (empty text).
        reject_others: add common words to the grammar as a garbage model, so speech that
            is none of the choices is rejected rather than forced onto the nearest one (a
            choice said among other words, "sales please", is still found).
        detector: the VAD that finds the utterance: ``"webrtc"`` or ``"energy"``.
        max_utterance_s: the longest utterance, in seconds.

    Raises:
        SttUnavailable: ``soundswallower`` is not installed, or has no such model.
    """

    def __init__(
        self,
        language: str = "en-us",
        *,
        min_confidence: float = 0.0,
        max_utterance_s: float = 8.0,
        partial_every_s: float = 0.5,
        detector: str = "webrtc",
        reject_others: bool = True,
    ) -> None:
        try:
            import soundswallower
        except ImportError:
            raise SttUnavailable(
                "the offline recognizer needs soundswallower: pip install soundswallower"
            ) from None
        self._module: Any = soundswallower
        model = soundswallower.get_model_path(language)
        if not os.path.isdir(model):
            raise SttUnavailable(f"soundswallower has no {language!r} model at {model}")
        self._model = model
        self.name = f"soundswallower {language}"
        self.min_confidence = min_confidence
        self.max_utterance_s = max_utterance_s
        self.partial_every_s = partial_every_s
        self.detector = detector
        self.reject_others = reject_others
        self._free: dict[int, collections.deque[Any]] = collections.defaultdict(collections.deque)

    def _new_decoder(self, rate: int) -> Any:
        return self._module.Decoder(
            hmm=self._model,
            dict=os.path.join(self._model, "dict.txt"),
            samprate=float(rate),
            logfn=os.devnull,
        )

    def check(self, phrases: Sequence[str]) -> None:
        """Raises SttError naming any word of ``phrases`` the dictionary lacks."""
        decoder = self._take_sync(8000)
        try:
            self._set_grammar(decoder, phrases)
        finally:
            self._free[8000].append(decoder)

    def _take_sync(self, rate: int) -> Any:
        free = self._free[rate]
        return free.popleft() if free else self._new_decoder(rate)

    async def _take(self, rate: int) -> Any:
        free = self._free[rate]
        if free:
            return free.popleft()
        return await trio.to_thread.run_sync(self._new_decoder, rate)

    def _set_grammar(self, decoder: Any, phrases: Sequence[str]) -> None:
        unknown = sorted(
            {w for p in phrases for w in _phrase_words(p) if decoder.lookup_word(w) is None}
        )
        if unknown:
            raise SttError(f"the recognizer's dictionary has no {', '.join(unknown)}")
        taken = {w for p in phrases for w in _phrase_words(p)}
        fillers = [w for w in _FILLERS if w not in taken] if self.reject_others else []
        try:
            decoder.set_jsgf_string(grammar(phrases, fillers))
        except (RuntimeError, ValueError) as exc:
            raise SttError(f"cannot build the grammar: {exc}") from None

    async def recognize(
        self,
        frames: Frames,
        sample_rate: int,
        *,
        hints: Sequence[str] = (),
        on_partial: PartialHandler | None = None,
    ) -> SttResult | None:
        if not hints:
            raise SttError("the offline recognizer needs the phrases to expect (hints/choices)")
        decoder = await self._take(sample_rate)
        started = False
        try:
            self._set_grammar(decoder, hints)
            detector = SpeechDetector(self.detector, sample_rate)
            preroll: collections.deque[npt.NDArray[np.int16]] = collections.deque(maxlen=15)
            speech_s = 0.0
            since_partial = 0.0
            async for frame in frames:
                seconds = frame.size / sample_rate
                edge = detector.push(frame)
                if not started:
                    preroll.append(frame)
                    if edge != "start":
                        continue
                    started = True
                    decoder.start_utt()
                    for early in preroll:
                        decoder.process_raw(early.astype("<i2").tobytes())
                    if on_partial is not None:
                        on_partial(SttResult("", 0.0, final=False))
                    continue
                decoder.process_raw(frame.astype("<i2").tobytes())
                speech_s += seconds
                since_partial += seconds
                if edge == "end" or speech_s >= self.max_utterance_s:
                    break
                if since_partial >= self.partial_every_s:
                    since_partial = 0.0
                    hyp = decoder.hyp
                    if hyp is not None and hyp.text and on_partial is not None:
                        on_partial(SttResult(hyp.text, float(hyp.prob), final=False))
            if not started:
                return None  # the audio ended (the call did) before anyone spoke
            decoder.end_utt()
            started = False
            hyp = decoder.hyp
            text = _choice_in(hyp.text or "", hints) if hyp is not None else ""
            confidence = float(hyp.prob) if hyp is not None and text else 0.0
            if confidence < self.min_confidence:
                text = ""
            return SttResult(text, confidence, final=True)
        finally:
            if started:
                decoder.end_utt()
            self._free[sample_rate].append(decoder)


@functools.cache
def default_stt() -> SoundSwallower:
    """The process's offline recognizer, shared by the flows that name none (its decoders
    are pooled across calls).

    Raises:
        SttUnavailable: soundswallower is not installed.
    """
    return SoundSwallower()
