"""G.711 μ-law and little-endian L16: wire bytes ↔ 1-D int16 PCM (PROTOCOL.md §4).

Both directions are table lookups or dtype views over whole arrays, never a per-sample Python
loop: the tables are built once, at import, with numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from callflow.protocol import Format

__all__ = [
    "as_pcm",
    "decode",
    "encode",
    "l16_decode",
    "l16_encode",
    "ulaw_decode",
    "ulaw_encode",
]

PCM = npt.NDArray[np.int16]

# G.711 μ-law constants, as in the ITU-T G.711 / Sun ``g711.c`` 16-bit reference:
# add a bias of 0x84 (132) to the magnitude, clip the magnitude at 32635 first so that
# magnitude + bias fits in 15 bits, store the code bit-inverted.
_BIAS = 0x84
_CLIP = 32635


def _build_ulaw_decode_table() -> PCM:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    table = np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)
    table.flags.writeable = False
    return table


def _build_ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # Index: the int16 sample's bit pattern as uint16, so ``table[pcm.view(np.uint16)]``.
    linear = np.arange(65536, dtype=np.int32)
    linear = np.where(linear >= 32768, linear - 65536, linear)
    sign = np.where(linear < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(linear), _CLIP) + _BIAS  # 132 … 32767
    # Segment (exponent) = position of the highest set bit above bit 7, 0 … 7.
    exponent = np.floor(np.log2(magnitude >> 7 | 1)).astype(np.int32)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    table: npt.NDArray[np.uint8] = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    table.flags.writeable = False
    return table


_ULAW_DECODE = _build_ulaw_decode_table()
_ULAW_ENCODE = _build_ulaw_encode_table()


def as_pcm(pcm: Any, what: str = "pcm") -> PCM:
    """``pcm`` as a native-order 1-D int16 array, without a copy when it already is one.

    Raises:
        TypeError: when ``pcm`` is not a numpy array of 16-bit signed integers.
        ValueError: when it is not 1-D.
    """
    if not isinstance(pcm, np.ndarray) or pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
        got = f"array of {pcm.dtype}" if isinstance(pcm, np.ndarray) else type(pcm).__name__
        raise TypeError(f"{what} must be a numpy int16 array, got {got}")
    if pcm.ndim != 1:
        raise ValueError(f"{what} must be 1-D (mono samples), got shape {pcm.shape}")
    return pcm.astype(np.int16, copy=False)


def ulaw_encode(pcm: PCM) -> bytes:
    """G.711 μ-law bytes for 1-D int16 ``pcm``, one byte per sample.

    Matches the ITU-T G.711 / Sun ``g711.c`` reference (bias 0x84, magnitude clipped at 32635,
    no zero trap): ``0 → 0xFF``, ``-32768 → 0x00``, ``32767 → 0x80``.

    Raises:
        TypeError: when ``pcm`` is not an int16 array.
        ValueError: when ``pcm`` is not 1-D.
    """
    samples = as_pcm(pcm)
    return _ULAW_ENCODE.take(samples.view(np.uint16)).tobytes()


def ulaw_decode(data: bytes) -> PCM:
    """1-D int16 PCM for G.711 μ-law ``data``, one sample per byte.

    Matches the ITU-T G.711 / Sun ``g711.c`` reference: ``0xFF`` and ``0x7F`` → 0,
    ``0x00`` → -32124, ``0x80`` → 32124. The result is a new, writable array.
    """
    return _ULAW_DECODE.take(np.frombuffer(data, dtype=np.uint8))


def l16_encode(pcm: PCM) -> bytes:
    """Little-endian signed 16-bit bytes for 1-D int16 ``pcm``, two bytes per sample.

    Plivo's L16 is little-endian, unlike RTP's network order (PROTOCOL.md §4).

    Raises:
        TypeError: when ``pcm`` is not an int16 array.
        ValueError: when ``pcm`` is not 1-D.
    """
    return as_pcm(pcm).astype("<i2", copy=False).tobytes()


def l16_decode(data: bytes) -> PCM:
    """1-D int16 PCM for little-endian signed 16-bit ``data`` (PROTOCOL.md §4).

    The result is a new, writable array in native byte order.

    Raises:
        ValueError: when ``len(data)`` is odd (not a whole number of samples).
    """
    if len(data) % 2:
        raise ValueError(f"L16 audio must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def encode(pcm: PCM, fmt: Format) -> bytes:
    """Wire bytes for 1-D int16 ``pcm`` in ``fmt``'s codec.

    ``pcm`` must already be at ``fmt.sample_rate``: this only encodes (``Audio.encoded``
    resamples too).

    Raises:
        TypeError: when ``pcm`` is not an int16 array or ``fmt`` is not a :class:`Format`.
        ValueError: when ``pcm`` is not 1-D.
    """
    if fmt is Format.MULAW_8K:
        return ulaw_encode(pcm)
    if fmt is Format.L16_8K or fmt is Format.L16_16K:
        return l16_encode(pcm)
    raise TypeError(f"fmt must be a callflow Format, not {fmt!r}")


def decode(data: bytes, fmt: Format) -> PCM:
    """1-D int16 PCM at ``fmt.sample_rate`` for raw wire audio ``data`` in ``fmt``.

    This is what a ``media`` event's base64-decoded ``payload`` holds (PROTOCOL.md §2, §4).

    Raises:
        ValueError: for L16 ``data`` of odd length.
        TypeError: when ``fmt`` is not a :class:`Format`.
    """
    if fmt is Format.MULAW_8K:
        return ulaw_decode(data)
    if fmt is Format.L16_8K or fmt is Format.L16_16K:
        return l16_decode(data)
    raise TypeError(f"fmt must be a callflow Format, not {fmt!r}")
