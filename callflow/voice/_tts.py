"""The text-to-speech seam: the ``Tts`` protocol and how its chunks are cut."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

import numpy as np

from callflow.audio import Audio
from callflow.voice._text import Break, Text, plain_segments

__all__ = ["MAX_TEXT_CHARS", "Tts", "synthesis_count"]

MAX_TEXT_CHARS = 4096
"""The longest text an engine is given (OpenAI's speech endpoint takes at most 4096
characters); longer prompts belong in several ``say`` calls or a rendered WAV."""

_synthesis_count = 0


def synthesis_count() -> int:
    """How many texts any engine of this package was asked to synthesise, since import.

    One count per :meth:`Tts.synthesize` or :meth:`Tts.stream` started. Compare before and
    after a call to prove that a cached prompt was not synthesised again."""
    return _synthesis_count


def _counted() -> None:
    global _synthesis_count
    _synthesis_count += 1


@runtime_checkable
class Tts(Protocol):
    """A text-to-speech engine: text and voice in, mono audio out.

    Attributes:
        name: the engine's identity in the render cache key: engine, program version and model,
            so a new engine version or model never plays an old rendering.
        default_voice: the voice used when a :class:`Text` names none.
        supports_ssml: whether the engine reads SSML itself; otherwise it is given
            :func:`plain_segments`.
    """

    @property
    def name(self) -> str: ...

    @property
    def default_voice(self) -> str: ...

    @property
    def supports_ssml(self) -> bool: ...

    def synthesize(self, text: Text) -> Audio:
        """The whole rendering of ``text``, blocking until it is done (for ``callflow prompts
        build`` and tests).

        Raises:
            TtsError: the engine failed.
        """
        ...

    def stream(self, text: Text) -> AsyncIterator[Audio]:
        """The rendering of ``text`` as chunks, as the engine produces them (at the engine's
        rate; each a fraction of a second to about a second). Closing the iterator
        (``aclose``) stops the synthesis at once: a program is killed, a request closed.

        Raises:
            TtsError: the engine failed.
        """
        ...


class ChunkCutter:
    """Collects raw little-endian int16 bytes and cuts them into :class:`Audio` chunks of
    about ``chunk_s`` seconds (the first of ``first_s``, so playback starts early)."""

    def __init__(self, rate: int, *, first_s: float = 0.25, chunk_s: float = 1.0) -> None:
        self.rate = rate
        self._buffer = bytearray()
        self._want = 2 * round(first_s * rate)
        self._chunk = 2 * round(chunk_s * rate)

    def feed(self, data: bytes) -> list[Audio]:
        """Take ``data``; return the chunks now complete."""
        self._buffer += data
        out: list[Audio] = []
        while len(self._buffer) >= self._want:
            piece = bytes(self._buffer[: self._want])
            del self._buffer[: self._want]
            out.append(_pcm(piece, self.rate))
            self._want = self._chunk
        return out

    def flush(self) -> Audio | None:
        """The rest (whole samples), or None when nothing is left."""
        size = len(self._buffer) // 2 * 2
        if not size:
            return None
        piece = bytes(self._buffer[:size])
        self._buffer.clear()
        return _pcm(piece, self.rate)


def _pcm(data: bytes, rate: int) -> Audio:
    return Audio(np.frombuffer(data, dtype="<i2").astype(np.int16), rate)


def check_length(text: Text) -> None:
    """Raises ValueError for a text longer than :data:`MAX_TEXT_CHARS`."""
    if len(text.text) > MAX_TEXT_CHARS:
        raise ValueError(
            f"text of {len(text.text)} characters is longer than {MAX_TEXT_CHARS}; split it"
        )


def spoken_segments(text: Text, supports_ssml: bool) -> list[str | Break]:
    """What an engine is given: the SSML itself when it reads SSML, else plain segments."""
    if text.is_ssml and supports_ssml:
        return [text.text]
    return plain_segments(text)
