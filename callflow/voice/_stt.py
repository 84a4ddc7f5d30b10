"""The speech-to-text seam: the ``Stt`` protocol and its results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["Frames", "PartialHandler", "Stt", "SttResult"]

Frames = AsyncIterator[npt.NDArray[np.int16]]
"""The caller's audio: 1-D int16 frames (about 20 ms each) at one sample rate."""


@attrs.frozen
class SttResult:
    """One recognition result.

    Attributes:
        text: what was recognised (a partial hypothesis may be empty: speech has started and
            nothing is recognised yet); a final result with empty text means the speech
            matched nothing.
        confidence: 0 to 1, as the engine reports it.
        final: whether this is the utterance's last word; the stream ends after it.
    """

    text: str
    confidence: float = 0.0
    final: bool = False


PartialHandler = Callable[[SttResult], None]
"""Called with each partial result, synchronously, as it comes."""


@runtime_checkable
class Stt(Protocol):
    """A speech recognizer: streaming audio in, partial and final results out."""

    @property
    def name(self) -> str: ...

    async def recognize(
        self,
        frames: Frames,
        sample_rate: int,
        *,
        hints: Sequence[str] = (),
        on_partial: PartialHandler | None = None,
    ) -> SttResult | None:
        """Recognise one utterance from ``frames`` (int16 at ``sample_rate`` Hz).

        Calls ``on_partial`` with partial results (the first as soon as speech starts,
        possibly with empty text) and returns the final result; returns None when the frames
        end before anyone spoke. ``hints`` are the phrases expected (a closed-set recognizer
        accepts only those; a cloud one is biased toward them). Cancelling it (a key was
        pressed) stops recognition at once and releases what it holds.

        Raises:
            SttError: the recognizer failed (a hint it cannot say, the service refused).
        """
        ...
