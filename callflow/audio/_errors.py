"""The audio layer's one exception type."""

from __future__ import annotations

__all__ = ["AudioError"]


class AudioError(ValueError):
    """Audio that cannot be read or used: a bad WAV file, an unsupported encoding.

    A :class:`ValueError`, so code that already catches bad values catches this too. The message
    names the file (when there is one) and what is wrong with it.
    """
