"""Errors of the voice layer."""

from __future__ import annotations


class VoiceError(Exception):
    """Base of the voice layer's errors."""


class TtsUnavailable(VoiceError):
    """No text-to-speech engine can be used: the message names what to install or set.

    Raised when a flow's engine is chosen (at flow declaration or load time), not at the first
    call that speaks text."""


class TtsError(VoiceError):
    """An engine failed to synthesise a text (the program exited non-zero, the service refused
    it). The message names the engine and the reason, never the whole text."""


class SttUnavailable(VoiceError):
    """No speech-to-text engine can be used: the message names what to install."""


class SttError(VoiceError):
    """A recognizer failed (the service refused the stream, the grammar cannot be built)."""
