"""An energy voice-activity detector for speech barge-in, ``wait_speech`` and ``record`` (pure).

It works on the frames Plivo sends (about 20 ms each). Speech *starts* once the level has
stayed above ``threshold_dbfs`` for ``min_speech_s`` (so a click or a cough shorter than that
does not count) and *ends* once it has stayed below for ``hangover_s``.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import numpy.typing as npt


@attrs.frozen(kw_only=True)
class VadSettings:
    """Energy VAD parameters.

    Attributes:
        threshold_dbfs: frame level (RMS, dB relative to full scale int16) above which a frame
            counts as voiced. -35 dBFS suits telephone speech over a quiet line.
        min_speech_s: seconds of consecutive voiced frames before speech starts.
        hangover_s: seconds of consecutive unvoiced frames before speech ends.
    """

    threshold_dbfs: float = -35.0
    min_speech_s: float = 0.2
    hangover_s: float = 0.8


def frame_dbfs(frame: npt.NDArray[np.int16]) -> float:
    """The RMS level of ``frame`` in dBFS (0 dBFS = a full-scale square wave; silence = -inf)."""
    if frame.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(np.square(frame, dtype=np.float64))))
    return -math.inf if rms == 0 else 20 * math.log10(rms / 32768.0)


@attrs.define
class Vad:
    """Feed it frames with :meth:`push`; it says when speech starts and ends."""

    settings: VadSettings = attrs.field(factory=VadSettings)
    speaking: bool = False
    _voiced_s: float = 0.0
    _unvoiced_s: float = 0.0

    def push(self, frame: npt.NDArray[np.int16], sample_rate: int) -> str | None:
        """Take one frame; return ``"start"`` or ``"end"`` when speech starts or ends on it."""
        seconds = frame.size / sample_rate
        if frame_dbfs(frame) >= self.settings.threshold_dbfs:
            self._voiced_s += seconds
            self._unvoiced_s = 0.0
            if not self.speaking and self._voiced_s >= self.settings.min_speech_s - 1e-9:
                self.speaking = True
                return "start"
        else:
            self._unvoiced_s += seconds
            self._voiced_s = 0.0
            if self.speaking and self._unvoiced_s >= self.settings.hangover_s - 1e-9:
                self.speaking = False
                return "end"
        return None
