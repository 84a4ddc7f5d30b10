"""Reading WAV files of every common layout into mono Audio, and writing 16-bit mono WAVs."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from callflow.audio import Audio, AudioError, read_wav, ulaw_decode, ulaw_encode, write_wav
from callflow.protocol import Format


def sine(freq_hz: float, rate: int, seconds: float, amplitude: float) -> npt.NDArray[np.float64]:
    return amplitude * np.sin(2 * np.pi * freq_hz * np.arange(round(seconds * rate)) / rate)


def peak_hz(x: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def riff(
    tag: int, channels: int, rate: int, bits: int, data: bytes, *, extensible: bool = False
) -> bytes:
    """A WAV file written by hand, for formats the stdlib ``wave`` cannot write."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block_align, block_align, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 5) + b"INFO\x00\x00"  # odd-sized chunk: padded
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    audio = Audio(rng.integers(-32768, 32768, 4000, dtype=np.int16), 16000)
    path = tmp_path / "a.wav"
    write_wav(path, audio)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
    assert read_wav(path) == audio
    assert Audio.from_wav(str(path)) == audio


def test_stereo_44k1_24bit_reads_to_mono_and_encodes_to_8k(tmp_path: Path) -> None:
    rate = 44100
    wanted = sine(1000, rate, 0.5, 0.5 * 2**23)  # the mono mix we expect, in 24-bit units
    other = sine(3000, rate, 0.5, 0.25 * 2**23)
    left, right = np.rint(wanted + other), np.rint(wanted - other)  # averaging cancels `other`
    frames = np.stack([left, right], axis=1).astype("<i4").reshape(-1)
    data = np.frombuffer(frames.tobytes(), dtype=np.uint8).reshape(-1, 4)[:, :3].tobytes()
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(rate)
        w.writeframes(data)

    audio = read_wav(path)
    assert audio.sample_rate == 44100
    assert audio.samples.ndim == 1
    assert len(audio) == len(wanted)
    expected16 = wanted / 256
    assert np.max(np.abs(audio.samples - expected16)) <= 1.0

    mulaw = audio.encoded(Format.MULAW_8K)
    assert len(mulaw) == 4000  # 0.5 s at 8 kHz, one byte per sample
    at8k = ulaw_decode(mulaw)
    assert peak_hz(at8k, 8000) == pytest.approx(1000, abs=3)
    reference = sine(1000, 8000, 0.5, 0.5 * 32768)
    middle = slice(100, -100)
    # μ-law keeps ~3 % relative error near the peak; the 3 kHz tone must be gone.
    assert np.max(np.abs(at8k[middle] - reference[middle])) < 0.05 * 16384


@pytest.mark.parametrize(
    ("width", "encode_sample"),
    [
        (1, lambda x: np.rint(x / 256 + 128).astype(np.uint8).tobytes()),
        (2, lambda x: np.rint(x).astype("<i2").tobytes()),
        (4, lambda x: (np.rint(x).astype(np.int64) * 65536).astype("<i4").tobytes()),
    ],
)
def test_integer_pcm_widths(tmp_path: Path, width: int, encode_sample: object) -> None:
    values = np.array([0, 256, -256, 12800, -12800, 32512, -32768], dtype=np.float64)
    path = tmp_path / f"w{width}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(11025)
        w.writeframes(encode_sample(values))  # type: ignore[operator]
    audio = read_wav(path)
    assert audio.sample_rate == 11025
    assert audio.samples.tolist() == values.astype(int).tolist()


def test_multichannel_extensible_24bit(tmp_path: Path) -> None:
    # Four channels of 24-bit PCM in WAVE_FORMAT_EXTENSIBLE, as sox writes them.
    channel_values = np.array([[1000, 2000, 3000, 6000], [-400, -400, -400, -400]]) * 256
    frames = channel_values.astype("<i4").reshape(-1)
    data = np.frombuffer(frames.tobytes(), dtype=np.uint8).reshape(-1, 4)[:, :3].tobytes()
    path = tmp_path / "quad.wav"
    path.write_bytes(riff(1, 4, 48000, 24, data, extensible=True))
    audio = read_wav(path)
    assert audio.sample_rate == 48000
    assert audio.samples.tolist() == [3000, -400]


def test_mulaw_wav(tmp_path: Path) -> None:
    pcm = np.array([0, 1000, -1000, 30000, -30000], dtype=np.int16)
    path = tmp_path / "ulaw.wav"
    path.write_bytes(riff(7, 1, 8000, 8, ulaw_encode(pcm)))
    audio = read_wav(path)
    assert audio.sample_rate == 8000
    assert audio.samples.tolist() == ulaw_decode(ulaw_encode(pcm)).tolist()
    assert audio.encoded(Format.MULAW_8K) == ulaw_encode(pcm)


def test_float_wav_stereo(tmp_path: Path) -> None:
    frames = np.array([[0.5, -0.5], [0.25, 0.25], [1.5, 1.5]], dtype="<f4")  # 1.5: clipped
    path = tmp_path / "float.wav"
    path.write_bytes(riff(3, 2, 16000, 32, frames.tobytes()))
    assert read_wav(path).samples.tolist() == [0, 8192, 32767]


def test_not_a_wav_file_raises_audio_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples")
    with pytest.raises(AudioError, match=r"notes\.wav.*not a WAV file") as info:
        read_wav(path)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a WAV file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no valid 'fmt ' chunk"),
        (riff(1, 1, 8000, 16, b"")[:36], "no 'data' chunk"),
        (riff(6, 1, 8000, 8, b"\xd5" * 8), "A-law"),
        (riff(0x55, 1, 8000, 16, b"\x00" * 8), "unsupported WAV encoding.*0x0055"),
        (riff(1, 1, 0, 16, b"\x00" * 8, extensible=True), "sample rate is 0"),
    ],
    ids=["empty", "no-fmt", "no-data", "alaw", "mp3", "rate-0"],
)
def test_bad_wav_files_raise_audio_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "nope.wav")
