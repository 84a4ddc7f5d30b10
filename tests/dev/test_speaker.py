"""``callflow dial``'s speaker: PCM in the call's rate to sounddevice, or nothing when there
is no sounddevice or no output device."""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest

from callflow.audio import beep, encode
from callflow.protocol import Format
from callflow.testing._speaker import Speaker


class _Stream:
    def __init__(self, **options: Any) -> None:
        self.options = options
        self.written: list[bytes] = []
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _fake_sounddevice(monkeypatch: pytest.MonkeyPatch, *, device: bool) -> list[_Stream]:
    streams: list[_Stream] = []
    module = types.ModuleType("sounddevice")

    def query_devices(kind: str) -> dict[str, str]:
        if not device:
            raise OSError("no output device")
        return {"name": "speaker"}

    def raw_output_stream(**options: Any) -> _Stream:
        streams.append(_Stream(**options))
        return streams[-1]

    module.query_devices = query_devices  # type: ignore[attr-defined]
    module.RawOutputStream = raw_output_stream  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    return streams


def test_the_call_plays_as_16_bit_pcm_at_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    streams = _fake_sounddevice(monkeypatch, device=True)
    speaker = Speaker.open(Format.MULAW_8K)
    assert speaker is not None
    tone = beep(0.1, rate=8000)
    speaker.play(encode(tone.samples, Format.MULAW_8K))
    speaker.close()
    (stream,) = streams
    assert stream.options == {"samplerate": 8000, "channels": 1, "dtype": "int16"}
    assert stream.started
    assert stream.closed
    played = np.frombuffer(b"".join(stream.written), dtype=np.int16)
    assert len(played) == 800
    assert np.abs(played.astype(int) - tone.samples.astype(int)).max() < 1100  # μ-law's step


def test_no_speaker_without_a_device_or_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_sounddevice(monkeypatch, device=False)
    assert Speaker.open(Format.L16_16K) is None
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    assert Speaker.open(Format.L16_16K) is None
