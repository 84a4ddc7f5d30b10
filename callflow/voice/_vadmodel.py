"""Speech detection for recognition and barge-in: the energy VAD's rule or WebRTC's model.

Both take the frames Plivo sends (20 ms) and report ``"start"``/``"end"`` with the same
timing rule: speech starts after ``min_speech_s`` of voiced frames (gaps of up to ``gap_s``
between them allowed) and ends after ``hangover_s`` of unvoiced ones. They differ in what
"voiced" means: a frame level above a threshold (energy), or WebRTC's GMM speech model
(``webrtcvad-wheels``), which tells steady noise from speech at a level the energy rule
cannot.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["VAD_MODELS", "SpeechDetector", "frame_voiced_energy"]

VAD_MODELS = ("energy", "webrtc")


def frame_voiced_energy(frame: npt.NDArray[np.int16], threshold_dbfs: float) -> bool:
    """Whether the frame's RMS level is at or above ``threshold_dbfs``."""
    if frame.size == 0:
        return False
    mean_square = float(np.mean(np.square(frame, dtype=np.float64)))
    if mean_square == 0:
        return False
    return 10 * math.log10(mean_square / (32768.0 * 32768.0)) >= threshold_dbfs


class WebRtcModel:
    """WebRTC's VAD on 10/20/30 ms frames at 8, 16, 32 or 48 kHz; ``aggressiveness`` 0-3
    (3 rejects the most non-speech). Frames of other lengths are cut into 10 ms pieces and a
    frame is voiced when most pieces are."""

    def __init__(self, sample_rate: int, aggressiveness: int = 3) -> None:
        import webrtcvad

        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"the WebRTC VAD takes 8, 16, 32 or 48 kHz, not {sample_rate}")
        self._vad: Any = webrtcvad.Vad(aggressiveness)
        self._rate = sample_rate
        self._piece = sample_rate // 100

    def voiced(self, frame: npt.NDArray[np.int16]) -> bool:
        size = frame.size
        if size in (self._piece, 2 * self._piece, 3 * self._piece):
            return bool(self._vad.is_speech(frame.astype("<i2").tobytes(), self._rate))
        pieces = size // self._piece
        if pieces == 0:
            return False
        data = frame[: pieces * self._piece].astype("<i2").tobytes()
        step = 2 * self._piece
        votes = sum(
            bool(self._vad.is_speech(data[i : i + step], self._rate))
            for i in range(0, len(data), step)
        )
        return votes * 2 > pieces


class SpeechDetector:
    """Start/end of speech from frames, with the energy rule or the WebRTC model.

    Args:
        model: ``"webrtc"`` or ``"energy"``.
        sample_rate: Hz of the frames.
        threshold_dbfs: the energy rule's level: a frame at or above it is voiced.
        floor_dbfs: for the model, the level below which a frame is never speech (line hiss
            the model might call voiced), and which saves running the model on silence.
        min_speech_s: the timing rule: speech for this long starts speech (seconds).
        hangover_s: the timing rule: silence for this long ends it (seconds).
        gap_s: unvoiced frames up to this long inside speech do not restart the count toward
            ``min_speech_s`` (seconds; 0.06 = three frames).
        aggressiveness: the WebRTC model's mode, 0-3.

    Raises:
        ValueError: an unknown model, or a rate the model does not take.
    """

    def __init__(
        self,
        model: str,
        sample_rate: int,
        *,
        threshold_dbfs: float = -35.0,
        floor_dbfs: float = -55.0,
        min_speech_s: float = 0.2,
        hangover_s: float = 0.8,
        gap_s: float = 0.06,
        aggressiveness: int = 3,
    ) -> None:
        if model not in VAD_MODELS:
            raise ValueError(f"VAD model must be one of {VAD_MODELS}, not {model!r}")
        self._model = WebRtcModel(sample_rate, aggressiveness) if model == "webrtc" else None
        self._rate = sample_rate
        self.threshold_dbfs = threshold_dbfs
        self.floor_dbfs = floor_dbfs
        self.min_speech_s = min_speech_s
        self.hangover_s = hangover_s
        self.gap_s = gap_s
        self.speaking = False
        self._voiced_s = 0.0
        self._unvoiced_s = 0.0

    def voiced(self, frame: npt.NDArray[np.int16]) -> bool:
        """Whether this one frame counts as speech."""
        loud = frame_voiced_energy(
            frame, self.threshold_dbfs if self._model is None else self.floor_dbfs
        )
        if self._model is None or not loud:
            return loud
        return self._model.voiced(frame)

    def push(self, frame: npt.NDArray[np.int16]) -> str | None:
        """Take one frame; ``"start"`` or ``"end"`` when speech starts or ends on it."""
        seconds = frame.size / self._rate
        if self.voiced(frame):
            self._voiced_s += seconds
            self._unvoiced_s = 0.0
            if not self.speaking and self._voiced_s >= self.min_speech_s - 1e-9:
                self.speaking = True
                return "start"
        else:
            self._unvoiced_s += seconds
            # A gap shorter than ``gap_s`` (a stop consonant, a frame the model doubts) does
            # not restart the count toward ``min_speech_s``; a longer one does.
            if self._unvoiced_s > self.gap_s + 1e-9:
                self._voiced_s = 0.0
            if self.speaking and self._unvoiced_s >= self.hangover_s - 1e-9:
                self.speaking = False
                return "end"
        return None
