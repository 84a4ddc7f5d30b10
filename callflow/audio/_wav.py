"""WAV files ↔ mono int16 PCM.

PCM WAVs (format tag 1) are read with the stdlib :mod:`wave`. Python 3.11's ``wave`` rejects
every other format tag, so for those a small RIFF reader takes over: IEEE float (tag 3),
G.711 μ-law (tag 7) and ``WAVE_FORMAT_EXTENSIBLE`` (tag 0xFFFE, which sox and most editors
write for 24-bit or multichannel audio) wrapping one of these.
"""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from callflow.audio._codec import PCM, as_pcm, l16_encode, ulaw_decode
from callflow.audio._errors import AudioError

__all__ = ["load_wav", "save_wav"]

_PCM_TAG = 0x0001
_FLOAT_TAG = 0x0003
_ALAW_TAG = 0x0006
_ULAW_TAG = 0x0007
_EXTENSIBLE_TAG = 0xFFFE

_CONVERT_HINT = "convert it with: sox IN.wav -e signed-integer -b 16 OUT.wav"


def load_wav(path: str | os.PathLike[str]) -> tuple[PCM, int]:
    """The mono int16 samples and the sample rate (Hz) of the WAV file at ``path``.

    Channels are mixed down by averaging; 8-bit (unsigned), 24-bit and 32-bit integer, 32/64-bit
    float and μ-law samples are converted to 16-bit. The rate is kept as it is.

    Raises:
        AudioError: naming the file, when it is not a WAV file, is truncated, or holds a format
            this reader does not handle (A-law, ADPCM, …).
        OSError: when the file cannot be opened (``FileNotFoundError`` …).
    """
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        # Not PCM, or not a WAV at all: the RIFF reader handles the rest or says what's wrong.
        tag, channels, width, rate, raw = _read_riff(p)
    else:
        tag = _PCM_TAG
    if rate <= 0:
        raise AudioError(f"{p}: WAV sample rate is {rate} Hz")
    if channels <= 0:
        raise AudioError(f"{p}: WAV has {channels} channels")
    return _to_mono(p, raw, tag, channels, width), rate


def save_wav(path: str | os.PathLike[str], samples: PCM, rate: int) -> None:
    """Write 1-D int16 ``samples`` at ``rate`` Hz to ``path`` as a 16-bit mono PCM WAV.

    Raises:
        OSError: when the file cannot be written.
    """
    data = l16_encode(as_pcm(samples, "samples"))
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data)


def _read_riff(p: Path) -> tuple[int, int, int, int, bytes]:
    """(format tag, channels, bytes per sample, rate, sample bytes) of a RIFF/WAVE file."""
    data = p.read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{p}: not a WAV file (it does not start with a RIFF/WAVE header)")
    fmt: bytes | None = None
    payload: bytes | None = None
    pos = 12
    while pos + 8 <= len(data) and payload is None:
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]  # a streamed WAV may claim more than it holds
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise AudioError(f"{p}: WAV file has no valid 'fmt ' chunk before its audio")
    if payload is None:
        raise AudioError(f"{p}: WAV file has no 'data' chunk")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE_TAG:
        if len(fmt) < 26:
            raise AudioError(f"{p}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is too short")
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the SubFormat GUID
    if channels <= 0 or block_align <= 0 or block_align % channels:
        raise AudioError(
            f"{p}: inconsistent WAV header ({channels} channels, {block_align}-byte frames)"
        )
    width = block_align // channels
    del bits  # the container width (block_align / channels) is what lays out the bytes
    usable = len(payload) // block_align * block_align
    return tag, channels, width, rate, payload[:usable]


def _to_mono(p: Path, raw: bytes, tag: int, channels: int, width: int) -> PCM:
    """Interleaved samples as mono int16 (average of the channels, rounded and clipped)."""
    frame = channels * width
    raw = raw[: len(raw) // frame * frame]
    values: npt.NDArray[np.float32]
    if tag == _PCM_TAG and width == 2:
        pcm16 = np.frombuffer(raw, dtype="<i2")
        if channels == 1:
            return pcm16.astype(np.int16)
        values = pcm16.astype(np.float32)
    elif tag == _PCM_TAG and width == 1:  # 8-bit WAV is unsigned, 128 is silence
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) * 256.0
    elif tag == _PCM_TAG and width == 3:
        padded = np.zeros((len(raw) // 3, 4), dtype=np.uint8)
        padded[:, 1:] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        values = padded.view("<i4")[:, 0].astype(np.float32) / 65536.0
    elif tag == _PCM_TAG and width == 4:
        values = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 65536.0
    elif tag == _FLOAT_TAG and width in (4, 8):
        floats = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8")
        values = floats.astype(np.float32) * 32768.0
    elif tag == _ULAW_TAG and width == 1:
        pcm16 = ulaw_decode(raw)
        if channels == 1:
            return pcm16
        values = pcm16.astype(np.float32)
    elif tag == _ALAW_TAG:
        raise AudioError(f"{p}: A-law WAV (format tag 6) is not supported; {_CONVERT_HINT}")
    else:
        raise AudioError(
            f"{p}: unsupported WAV encoding (format tag {tag:#06x}, {width * 8}-bit); "
            f"{_CONVERT_HINT}"
        )
    if channels > 1:
        values = values.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)
