"""The voice-activity detector for speech barge-in, ``wait_speech`` and ``record`` (pure).

It works on the frames Plivo sends (about 20 ms each). A frame is *voiced* by the energy rule
(its level at or above ``threshold_dbfs``) or by WebRTC's speech model (``model="webrtc"``,
:class:`callflow.voice.SpeechDetector`). Speech *starts* once voiced frames have lasted
``min_speech_s`` (so a click or a cough shorter than that does not count; gaps up to ``gap_s``
allowed) and *ends* once unvoiced ones have lasted ``hangover_s``.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import numpy.typing as npt

from callflow.voice import VAD_MODELS, SpeechDetector


def _model(_: object, __: object, value: str) -> None:
    if value not in VAD_MODELS:
        raise ValueError(f"VAD model must be one of {', '.join(VAD_MODELS)}, not {value!r}")


@attrs.frozen(kw_only=True)
class VadSettings:
    """VAD parameters.

    Attributes:
        model: what makes a frame voiced: ``"energy"`` (its level) or ``"webrtc"`` (WebRTC's
            speech model, which steady noise loud enough to trip the energy rule does not
            trip; see docs/performance.md, Voice, for both measured).
        threshold_dbfs: the energy rule's frame level (RMS, dB relative to full scale int16)
            at or above which a frame counts as voiced. -35 dBFS suits telephone speech over
            a quiet line.
        floor_dbfs: with the model, frames below this level are never voiced.
        min_speech_s: seconds of voiced frames before speech starts.
        hangover_s: seconds of consecutive unvoiced frames before speech ends.
        gap_s: unvoiced frames up to this long do not restart the count toward
            ``min_speech_s`` (0: every voiced frame must follow the last).
        aggressiveness: the model's mode, 0-3 (3 rejects the most non-speech).

    Raises:
        ValueError: an unknown ``model``.
    """

    model: str = attrs.field(default="webrtc", validator=_model)
    threshold_dbfs: float = -35.0
    floor_dbfs: float = -55.0
    min_speech_s: float = 0.2
    hangover_s: float = 0.8
    gap_s: float = 0.06
    aggressiveness: int = 3


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
    _detector: SpeechDetector | None = None

    @property
    def speaking(self) -> bool:
        """Whether speech has started and not yet ended."""
        return self._detector is not None and self._detector.speaking

    def _for(self, sample_rate: int) -> SpeechDetector:
        detector = self._detector
        if detector is None:
            s = self.settings
            detector = self._detector = SpeechDetector(
                s.model,
                sample_rate,
                threshold_dbfs=s.threshold_dbfs,
                floor_dbfs=s.floor_dbfs,
                min_speech_s=s.min_speech_s,
                hangover_s=s.hangover_s,
                gap_s=s.gap_s,
                aggressiveness=s.aggressiveness,
            )
        return detector

    def voiced(self, frame: npt.NDArray[np.int16], sample_rate: int) -> bool:
        """Whether this one frame counts as speech (``record`` counts silence with it)."""
        return self._for(sample_rate).voiced(frame)

    def push(self, frame: npt.NDArray[np.int16], sample_rate: int) -> str | None:
        """Take one frame; return ``"start"`` or ``"end"`` when speech starts or ends on it."""
        return self._for(sample_rate).push(frame)
