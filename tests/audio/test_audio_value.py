"""The Audio value: immutability, equality, concatenation, per-format cache, payloads, folders."""

from __future__ import annotations

import base64
from pathlib import Path

import attrs
import numpy as np
import pytest

from callflow.audio import (
    MAX_B64,
    Audio,
    PromptFolder,
    beep,
    chunk_bytes,
    chunk_payloads,
    encode_count,
    frame_bytes,
    l16_encode,
    ulaw_encode,
    write_wav,
)
from callflow.protocol import Format

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "flows" / "prompts"
PROMPT_NAMES = ["echo", "goodbye", "invalid", "menu", "noinput", "sales", "support", "welcome"]


def noise(seconds: float, rate: int = 8000, seed: int = 1) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio(rng.integers(-20000, 20000, round(seconds * rate), dtype=np.int16), rate)


# -- the value -------------------------------------------------------------------------------


def test_samples_are_a_read_only_copy() -> None:
    source = np.arange(10, dtype=np.int16)
    audio = Audio(source, 8000)
    source[0] = 99
    assert audio.samples[0] == 0
    assert not audio.samples.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        audio.samples[0] = 1
    assert source.flags.writeable  # the caller's array is left alone


def test_read_only_view_of_a_writable_array_is_copied() -> None:
    source = np.arange(10, dtype=np.int16)
    view = source[:]
    view.flags.writeable = False
    audio = Audio(view, 8000)
    source[1] = 99
    assert audio.samples[1] == 1


def test_audio_is_frozen_and_final() -> None:
    audio = Audio.silence(0.1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        audio.sample_rate = 16000  # type: ignore[misc]
    with pytest.raises(TypeError):

        class Louder(Audio):  # type: ignore[misc]
            pass


@pytest.mark.parametrize(
    ("samples", "rate", "error"),
    [
        (np.zeros(4, dtype=np.float32), 8000, TypeError),
        ([0, 1, 2], 8000, TypeError),
        (np.zeros((2, 2), dtype=np.int16), 8000, ValueError),
        (np.zeros(4, dtype=np.int16), 0, ValueError),
        (np.zeros(4, dtype=np.int16), 8000.0, ValueError),
        (np.zeros(4, dtype=np.int16), True, ValueError),
    ],
)
def test_constructor_validates(samples: object, rate: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Audio(samples, rate)


def test_length_duration_equality_hash_repr() -> None:
    a = Audio(np.arange(4000, dtype=np.int16), 8000)
    assert len(a) == 4000
    assert a.duration_s == 0.5
    same = Audio(np.arange(4000, dtype=np.int16), 8000)
    assert a == same
    assert hash(a) == hash(same)
    assert len({a, same}) == 1
    assert a != Audio(np.arange(4000, dtype=np.int16), 16000)
    assert a != Audio(np.arange(1, 4001, dtype=np.int16), 8000)
    assert a != Audio(np.arange(10, dtype=np.int16), 8000)
    assert a != "audio"
    assert repr(a) == "<Audio 0.500 s at 8000 Hz>"
    assert Audio(np.arange(4, dtype=np.int16), np.int64(8000)).sample_rate == 8000


def test_concatenation_resamples_to_the_first_rate() -> None:
    a = Audio.silence(0.5, 8000)
    b = beep(0.5, rate=16000)
    ab = a + b
    assert ab.sample_rate == 8000
    assert len(ab) == 8000
    assert not ab.samples[:4000].any()
    assert ab.samples[4000:].any()
    assert Audio.concat([a, b]) == ab
    ba = Audio.concat([a, b], sample_rate=16000)
    assert (ba.sample_rate, len(ba)) == (16000, 16000)
    assert Audio.concat([], sample_rate=8000) == Audio.silence(0, 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        Audio.concat([])
    with pytest.raises(TypeError, match="Audio"):
        Audio.concat([a, b"raw"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _ = a + b"raw"


def test_resampled() -> None:
    a = beep(0.5, rate=8000)
    assert a.resampled(8000) is a
    up = a.resampled(16000)
    assert (up.sample_rate, len(up)) == (16000, 8000)


def test_from_bytes_is_the_wire_audio_and_needs_no_encoding() -> None:
    raw = l16_encode(np.array([8, -8, 1000], dtype=np.int16))
    audio = Audio.from_bytes(raw, Format.L16_16K)
    assert audio.sample_rate == 16000
    assert audio.samples.tolist() == [8, -8, 1000]
    before = encode_count()
    assert audio.encoded(Format.L16_16K) == raw
    assert encode_count() == before
    assert Audio.from_bytes(b"\xff\x7f", Format.MULAW_8K).samples.tolist() == [0, 0]
    with pytest.raises(ValueError, match="even"):
        Audio.from_bytes(b"\x00", Format.L16_8K)


# -- encoding and its cache ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(Format))
def test_encoded_is_resampled_and_encoded(fmt: Format) -> None:
    audio = noise(1.0, 8000)
    raw = audio.encoded(fmt)
    assert len(raw) == fmt.bytes_per_second  # one second
    if fmt is Format.MULAW_8K:
        assert raw == ulaw_encode(audio.samples)
    elif fmt is Format.L16_8K:
        assert raw == l16_encode(audio.samples)
    else:
        assert raw == l16_encode(audio.resampled(16000).samples)


def test_encoded_once_per_format_for_ten_thousand_callers() -> None:
    prompt = noise(2.0)
    before = encode_count()
    first = {fmt: prompt.payloads(fmt) for fmt in Format}
    assert encode_count() == before + len(Format)
    for _ in range(10_000):
        for fmt in Format:
            assert prompt.payloads(fmt) is first[fmt]
            prompt.encoded(fmt)
    assert encode_count() == before + len(Format)


def test_second_payloads_call_does_no_work() -> None:
    prompt = noise(3.0)
    first = prompt.payloads(Format.MULAW_8K)
    count = encode_count()
    assert prompt.payloads(Format.MULAW_8K) is first
    assert prompt.encoded(Format.MULAW_8K) is prompt.encoded(Format.MULAW_8K)
    assert encode_count() == count


def test_equal_values_keep_their_own_cache() -> None:
    a, b = noise(0.1), noise(0.1)
    a.encoded(Format.MULAW_8K)
    before = encode_count()
    b.encoded(Format.MULAW_8K)
    assert encode_count() == before + 1


# -- payloads --------------------------------------------------------------------------------


def test_chunk_sizes_are_whole_frames_under_the_16k_base64_limit() -> None:
    assert {fmt: frame_bytes(fmt) for fmt in Format} == {
        Format.MULAW_8K: 160,
        Format.L16_8K: 320,
        Format.L16_16K: 640,
    }
    for fmt in Format:
        size = chunk_bytes(fmt)
        assert size == 12160
        assert size % frame_bytes(fmt) == 0
        assert size <= 12288 < size + frame_bytes(fmt)  # PROTOCOL.md §4: 12 288 raw per 16 KB
        assert len(base64.b64encode(bytes(size))) <= MAX_B64 == 16384


@pytest.mark.parametrize("fmt", list(Format))
def test_payloads_decode_back_to_the_encoding(fmt: Format) -> None:
    audio = noise(4.37, 8000)
    payloads = audio.payloads(fmt)
    assert len(payloads) > 1
    raws = [base64.b64decode(p, validate=True) for p in payloads]
    assert all(len(p) <= 16384 for p in payloads)
    assert all(len(r) == 12160 for r in raws[:-1])
    assert all(len(r) % fmt.sample_width == 0 for r in raws)
    assert b"".join(raws) == audio.encoded(fmt)


def test_payloads_with_a_smaller_limit() -> None:
    audio = noise(1.0, 16000)
    payloads = audio.payloads(Format.L16_16K, max_b64=4000)
    raws = [base64.b64decode(p) for p in payloads]
    assert all(len(p) <= 4000 for p in payloads)
    assert all(len(r) == 2560 for r in raws[:-1])  # 4 frames of 640 bytes
    assert b"".join(raws) == audio.encoded(Format.L16_16K)
    assert audio.payloads(Format.L16_16K, max_b64=4000) is payloads
    assert audio.payloads(Format.L16_16K) is not payloads


def test_chunk_payloads_of_raw_bytes() -> None:
    assert chunk_payloads(b"", Format.MULAW_8K) == ()
    raw = bytes(range(256)) * 100
    payloads = chunk_payloads(raw, Format.MULAW_8K)
    assert [len(base64.b64decode(p)) for p in payloads] == [12160, 12160, 1280]
    # Below one frame, whole samples still: 8 base64 chars carry 6 bytes = 3 L16 samples.
    tiny = chunk_payloads(b"\x01\x00" * 5, Format.L16_8K, max_b64=8)
    assert [len(base64.b64decode(p)) for p in tiny] == [6, 4]
    tiny_odd = chunk_payloads(b"\x01\x00" * 5, Format.L16_8K, max_b64=4)
    assert [len(base64.b64decode(p)) for p in tiny_odd] == [2] * 5
    with pytest.raises(ValueError, match="whole number"):
        chunk_payloads(b"\x00" * 321, Format.L16_8K)
    with pytest.raises(ValueError, match="cannot hold"):
        chunk_payloads(b"\x00\x00", Format.L16_8K, max_b64=3)


# -- prompt folders --------------------------------------------------------------------------


def test_folder_loads_the_example_prompts() -> None:
    prompts = Audio.folder(PROMPTS / "README.md", ".")  # anchored on a file, like __file__
    welcome = prompts.welcome
    assert isinstance(welcome, Audio)
    assert welcome.sample_rate == 8000
    assert 0.5 < welcome.duration_s < 4
    assert prompts["welcome"] is welcome  # read once, cached
    assert prompts.names() == PROMPT_NAMES
    assert list(prompts) == PROMPT_NAMES
    assert "menu" in prompts
    assert "nothing" not in prompts


def test_example_prompts_are_short_8k_mono() -> None:
    prompts = Audio.folder(ROOT / "flows", "prompts")
    loaded = prompts.load_all()
    assert sorted(loaded) == PROMPT_NAMES
    for name, audio in loaded.items():
        assert audio.sample_rate == 8000, name
        assert 1 < audio.duration_s < 5.5, name
        assert np.max(np.abs(audio.samples)) > 10000, name  # not silent


def test_missing_prompt_lists_the_available_ones() -> None:
    prompts = Audio.folder(ROOT / "flows", "prompts")
    with pytest.raises(AttributeError, match=r"no prompt 'welcom'.*available: echo, goodbye"):
        _ = prompts.welcom
    with pytest.raises(KeyError, match="welcom"):
        _ = prompts["welcom"]
    with pytest.raises(KeyError):
        _ = prompts["../prompts/welcome"]
    with pytest.raises(AttributeError):
        _ = prompts._private
    assert "welcome" in dir(prompts)


def test_folder_reads_lazily_and_caches(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    folder = Audio.folder(tmp_path, "p")
    assert isinstance(folder, PromptFolder)
    assert folder.path == tmp_path / "p"
    assert folder.names() == []
    with pytest.raises(AttributeError, match="available: none"):
        _ = folder.hello
    write_wav(tmp_path / "p" / "hello.wav", beep())
    hello = folder.hello
    (tmp_path / "p" / "hello.wav").unlink()
    assert folder.hello is hello  # cached: not read again


def test_missing_folder_raises_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="prompt folder"):
        Audio.folder(tmp_path / "flow.py", "prompts")
