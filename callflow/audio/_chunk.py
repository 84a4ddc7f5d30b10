"""Cutting raw wire audio into ``playAudio`` payloads (PROTOCOL.md §1, §3, §4)."""

from __future__ import annotations

import base64

from callflow.protocol import Format

__all__ = ["MAX_B64", "chunk_bytes", "chunk_payloads", "frame_bytes"]

MAX_B64 = 16384
"""Plivo's recommended largest ``playAudio`` payload: 16 KB of base64 (PROTOCOL.md §1)."""

_FRAME_S = 0.02


def frame_bytes(fmt: Format) -> int:
    """Wire bytes in one 20 ms frame of ``fmt``: 160 (μ-law 8 kHz), 320 (L16 8 kHz),
    640 (L16 16 kHz) (PROTOCOL.md §4)."""
    return round(fmt.bytes_per_second * _FRAME_S)


def chunk_bytes(fmt: Format, max_b64: int = MAX_B64) -> int:
    """Raw bytes per ``playAudio`` payload of ``fmt`` whose base64 fits in ``max_b64`` chars.

    Base64 turns every 3 bytes into 4 characters, so ``max_b64`` characters carry at most
    ``max_b64 // 4 * 3`` raw bytes: 12 288 for the default 16 384 (PROTOCOL.md §4). The chunk
    is the largest whole number of 20 ms frames that fits; with the default that is
    **12 160 bytes for every format**: 76 μ-law frames (1.52 s), 38 L16 8 kHz frames (0.76 s),
    19 L16 16 kHz frames (0.38 s), i.e. 16 216 base64 characters. When ``max_b64`` is too
    small for one frame, the chunk is the largest whole number of samples that fits.

    Raises:
        ValueError: when ``max_b64`` cannot hold even one sample.
    """
    max_raw = max_b64 // 4 * 3
    frame = frame_bytes(fmt)
    if max_raw >= frame:
        return max_raw // frame * frame
    size = max_raw // fmt.sample_width * fmt.sample_width
    if size <= 0:
        raise ValueError(f"max_b64={max_b64} cannot hold one {fmt.name} sample")
    return size


def chunk_payloads(raw: bytes, fmt: Format, max_b64: int = MAX_B64) -> tuple[str, ...]:
    """The base64 payloads of successive ``playAudio`` messages carrying ``raw``.

    ``raw`` is wire audio already in ``fmt`` (no WAV header). Every payload is at most
    ``max_b64`` characters and, but the last, exactly :func:`chunk_bytes` raw bytes (a whole
    number of 20 ms frames); every payload is a whole number of samples, so an L16 payload
    never splits a sample. Decoding and joining the payloads gives back ``raw``. Empty ``raw``
    gives ``()``.

    Raises:
        ValueError: when ``len(raw)`` is not a whole number of ``fmt`` samples (odd for L16),
            or ``max_b64`` cannot hold one sample.
    """
    if len(raw) % fmt.sample_width:
        raise ValueError(
            f"{fmt.name} audio must be a whole number of {fmt.sample_width}-byte samples, "
            f"got {len(raw)} bytes"
        )
    size = chunk_bytes(fmt, max_b64)
    view = memoryview(raw)
    return tuple(
        base64.b64encode(view[i : i + size]).decode("ascii") for i in range(0, len(raw), size)
    )
