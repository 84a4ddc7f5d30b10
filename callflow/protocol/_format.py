"""The three audio formats Plivo streams in (PROTOCOL.md §4)."""

from __future__ import annotations

import enum


class Format(enum.Enum):
    """One of Plivo's three bidirectional-stream audio formats (PROTOCOL.md §4).

    Each member knows its wire names and sizes:

    * ``content_type``: the ``<Stream contentType=…>`` XML value, with ``;rate=``.
    * ``encoding``: the ``start.mediaFormat.encoding`` / ``playAudio`` ``contentType``
      value, without ``;rate=``.
    * ``sample_rate``: samples per second (Hz).
    * ``sample_width``: bytes per sample on the wire (1 for μ-law, 2 for L16).
    """

    MULAW_8K = ("audio/x-mulaw", 8000)
    """G.711 μ-law, 8 kHz mono: 160 bytes per 20 ms."""
    L16_8K = ("audio/x-l16", 8000)
    """Signed 16-bit little-endian PCM, 8 kHz mono: 320 bytes per 20 ms."""
    L16_16K = ("audio/x-l16", 16000)
    """Signed 16-bit little-endian PCM, 16 kHz mono: 640 bytes per 20 ms."""

    def __init__(self, encoding: str, sample_rate: int) -> None:
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.sample_width = 1 if encoding == "audio/x-mulaw" else 2
        self.content_type = f"{encoding};rate={sample_rate}"

    @property
    def bytes_per_second(self) -> int:
        """Wire bytes per second of audio."""
        return self.sample_rate * self.sample_width

    def duration_s(self, n_bytes: int) -> float:
        """Seconds of audio in ``n_bytes`` of raw wire audio."""
        return n_bytes / self.bytes_per_second

    @classmethod
    def from_content_type(cls, content_type: str) -> Format:
        """The member for an XML ``contentType`` such as ``audio/x-l16;rate=16000``.

        Raises:
            ValueError: for any other string.
        """
        for member in cls:
            if member.content_type == content_type.replace(" ", "").lower():
                return member
        valid = ", ".join(m.content_type for m in cls)
        raise ValueError(f"unknown contentType {content_type!r}; Plivo accepts {valid}")

    @classmethod
    def from_wire(cls, encoding: str, sample_rate: int) -> Format:
        """The member for a ``start.mediaFormat`` pair (``encoding`` without ``;rate``).

        Raises:
            ValueError: when Plivo has no such format.
        """
        for member in cls:
            if member.encoding == encoding.lower() and member.sample_rate == sample_rate:
                return member
        raise ValueError(f"no Plivo audio format {encoding!r} at {sample_rate} Hz")
