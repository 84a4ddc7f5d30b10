"""G.711 μ-law and little-endian L16 codecs against reference values (PROTOCOL.md §4)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from callflow.audio import decode, encode, l16_decode, l16_encode, ulaw_decode, ulaw_encode
from callflow.protocol import Format

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


# -- a plain scalar reference, written from the G.711 / Sun g711.c algorithm --------------------


def ref_linear_to_ulaw(sample: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0x00
    magnitude = min(-sample if sample < 0 else sample, clip) + bias
    exponent, mask = 7, 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ref_ulaw_to_linear(code: int) -> int:
    bias = 0x84
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + bias) << ((u & 0x70) >> 4)
    return bias - t if u & 0x80 else t - bias


# -- μ-law -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "linear"),
    [
        (0xFF, 0),
        (0x7F, 0),
        (0x00, -32124),
        (0x80, 32124),
        (0xFE, 8),
        (0x7E, -8),
        (0xF0, 120),
        (0xEF, 132),
        (0x8F, 16764),
        (0x0F, -16764),
    ],
)
def test_ulaw_decode_known_values(code: int, linear: int) -> None:
    assert ulaw_decode(bytes([code])).tolist() == [linear]


@pytest.mark.parametrize(
    ("linear", "code"),
    [
        (0, 0xFF),
        (1, 0xFF),
        (-1, 0x7F),
        (100, 0xF2),
        (1000, 0xCE),
        (-1000, 0x4E),
        (32635, 0x80),
        (32767, 0x80),
        (-32768, 0x00),
    ],
)
def test_ulaw_encode_known_values(linear: int, code: int) -> None:
    assert ulaw_encode(np.array([linear], dtype=np.int16)) == bytes([code])


def test_ulaw_decode_matches_reference_for_all_256_codes() -> None:
    expected = [ref_ulaw_to_linear(c) for c in range(256)]
    assert ulaw_decode(ALL_CODES).tolist() == expected


def test_ulaw_encode_matches_reference_for_all_65536_inputs() -> None:
    expected = bytes(ref_linear_to_ulaw(x) for x in range(-32768, 32768))
    assert ulaw_encode(ALL_INT16) == expected


def test_ulaw_decode_encode_decode_is_stable_for_every_code() -> None:
    once = ulaw_decode(ALL_CODES)
    assert np.array_equal(ulaw_decode(ulaw_encode(once)), once)


def test_ulaw_round_trip_error_is_within_half_a_quantisation_step() -> None:
    x = ALL_INT16.astype(np.int32)
    y = ulaw_decode(ulaw_encode(ALL_INT16)).astype(np.int32)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(magnitude >> 7 | 1)).astype(np.int32)
    step = 8 << exponent  # distance between neighbouring codes in this segment
    clipped = np.abs(x) > 32635
    error = np.abs(x - y)
    assert np.all(error[~clipped] <= step[~clipped] // 2)
    assert np.all(error[clipped] <= 32768 - 32124)
    assert np.all((y == 0) | (np.sign(y) == np.sign(x)))  # the sign survives


def test_ulaw_is_monotonic() -> None:
    y = ulaw_decode(ulaw_encode(ALL_INT16))
    assert np.all(np.diff(y.astype(np.int32)) >= 0)


def test_ulaw_decode_returns_a_writable_int16_copy() -> None:
    out = ulaw_decode(b"\xff\x00")
    assert out.dtype == np.int16
    assert out.ndim == 1
    out[0] = 5  # not a view of the shared table
    assert ulaw_decode(b"\xff").tolist() == [0]


def test_ulaw_of_empty_input_is_empty() -> None:
    assert ulaw_encode(np.zeros(0, dtype=np.int16)) == b""
    assert ulaw_decode(b"").shape == (0,)


# -- L16 -------------------------------------------------------------------------------------


def seed_payload() -> bytes:
    seeds = SHARED / "seeds"
    if not seeds.is_dir():
        pytest.skip(f"the shared seeds are not beside the repository ({seeds})")
    for path in sorted(seeds.glob("*.txt")):
        match = re.search(r'"payload":\s*"(CAAIAAgA[A-Za-z0-9+/=]*)"', path.read_text())
        if match:
            return base64.b64decode(match.group(1))
    raise AssertionError(f"no CAAIAAgA… payload in {seeds}")


def test_seed_l16_payload_is_a_constant_plus_8_little_endian() -> None:
    raw = seed_payload()
    pcm = l16_decode(raw)
    assert len(pcm) == len(raw) // 2 > 100
    assert set(pcm.tolist()) == {8}
    assert set(decode(raw, Format.L16_8K).tolist()) == {8}
    # Read big-endian it would be a constant +2048: PROTOCOL.md §4 decides for little-endian.
    assert set(np.frombuffer(raw, dtype=">i2").tolist()) == {2048}


def test_l16_is_little_endian() -> None:
    pcm = np.array([1, -2, 0x1234, -32768, 32767], dtype=np.int16)
    raw = l16_encode(pcm)
    assert raw == b"\x01\x00\xfe\xff\x34\x12\x00\x80\xff\x7f"
    assert l16_decode(raw).tolist() == pcm.tolist()


def test_l16_round_trips_every_int16_value() -> None:
    assert np.array_equal(l16_decode(l16_encode(ALL_INT16)), ALL_INT16)


def test_l16_encode_accepts_big_endian_arrays() -> None:
    pcm = np.array([1, -2], dtype=">i2")
    assert l16_encode(pcm) == b"\x01\x00\xfe\xff"


def test_l16_decode_of_odd_length_raises() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        l16_decode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="even number of bytes"):
        decode(b"\x00", Format.L16_16K)


def test_l16_decode_returns_a_writable_native_int16_array() -> None:
    out = l16_decode(b"\x01\x00")
    assert out.dtype == np.dtype(np.int16)
    out[0] = 3


# -- dispatch and argument checks --------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(Format))
def test_encode_decode_dispatch_on_format(fmt: Format) -> None:
    pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    raw = encode(pcm, fmt)
    assert len(raw) == len(pcm) * fmt.sample_width
    if fmt is Format.MULAW_8K:
        assert raw == ulaw_encode(pcm)
        assert decode(raw, fmt).tolist() == ulaw_decode(raw).tolist()
    else:
        assert raw == l16_encode(pcm)
        assert decode(raw, fmt).tolist() == pcm.tolist()


def test_encode_rejects_non_int16_and_non_1d() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float32))
    with pytest.raises(TypeError, match="int16"):
        l16_encode([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        encode(np.zeros((2, 2), dtype=np.int16), Format.L16_8K)
    with pytest.raises(TypeError, match="Format"):
        encode(np.zeros(2, dtype=np.int16), "audio/x-mulaw")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Format"):
        decode(b"\x00", "audio/x-mulaw")  # type: ignore[arg-type]
