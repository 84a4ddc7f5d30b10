"""The energy VAD (pure): start threshold, minimum speech duration, hangover, levels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from callflow.runtime._vad import Vad, VadSettings, frame_dbfs

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz


def frame(dbfs: float) -> np.ndarray:
    """A 20 ms square wave whose RMS level is ``dbfs`` (a square wave's RMS is its peak)."""
    peak = round(32768 * 10 ** (dbfs / 20))
    return np.where(np.arange(FRAME) % 2, peak, -peak).astype(np.int16)


def feed(vad: Vad, levels: list[float]) -> list[tuple[int, str]]:
    """Push one frame per level; return ``(frame index, "start"/"end")`` for each change."""
    changes = []
    for index, level in enumerate(levels):
        change = vad.push(frame(level), RATE)
        if change is not None:
            changes.append((index, change))
    return changes


def test_frame_levels() -> None:
    assert frame_dbfs(np.zeros(FRAME, dtype=np.int16)) == -math.inf
    assert frame_dbfs(np.zeros(0, dtype=np.int16)) == -math.inf
    assert frame_dbfs(frame(-20.0)) == pytest.approx(-20.0, abs=0.01)
    assert frame_dbfs(np.full(FRAME, 32767, dtype=np.int16)) == pytest.approx(0.0, abs=0.001)


def test_speech_starts_after_min_speech_s_of_voiced_frames() -> None:
    vad = Vad(VadSettings(model="energy", gap_s=0.0, threshold_dbfs=-35.0, min_speech_s=0.2))
    # 9 voiced frames (0.18 s) are not enough; the 10th (0.2 s) starts speech
    assert feed(vad, [-90.0] * 5 + [-20.0] * 12) == [(14, "start")]
    assert vad.speaking


def test_a_burst_shorter_than_min_speech_s_is_not_speech() -> None:
    vad = Vad(VadSettings(model="energy", gap_s=0.0, min_speech_s=0.2))
    # two 0.18 s bursts with one quiet frame between: the count starts again
    assert feed(vad, [-20.0] * 9 + [-90.0] + [-20.0] * 9 + [-90.0] * 10) == []
    assert not vad.speaking


def test_the_threshold_is_inclusive_and_quieter_frames_are_unvoiced() -> None:
    at = Vad(VadSettings(model="energy", gap_s=0.0, threshold_dbfs=-35.0, min_speech_s=0.04))
    assert feed(at, [-34.99, -34.99]) == [(1, "start")]
    below = Vad(VadSettings(model="energy", gap_s=0.0, threshold_dbfs=-35.0, min_speech_s=0.04))
    assert feed(below, [-36.0] * 20) == []


def test_speech_ends_after_hangover_s_of_unvoiced_frames() -> None:
    vad = Vad(VadSettings(model="energy", gap_s=0.0, min_speech_s=0.1, hangover_s=0.3))
    voice = [-20.0] * 10
    # a 0.28 s pause (14 frames) is within the hangover: still speaking
    changes = feed(vad, voice + [-90.0] * 14 + voice + [-90.0] * 15)
    assert changes == [(4, "start"), (48, "end")]  # the 15th quiet frame after the voice
    assert not vad.speaking


def test_it_counts_seconds_not_frames() -> None:
    vad = Vad(VadSettings(model="energy", gap_s=0.0, min_speech_s=0.2))
    wide = np.tile(frame(-20.0), 2)  # 40 ms frames at 8 kHz
    assert [vad.push(wide, RATE) for _ in range(5)] == [None, None, None, None, "start"]
