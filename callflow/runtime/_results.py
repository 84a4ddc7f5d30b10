"""Values the DSL returns: gather results, barge-in triggers, recordings, machine detection."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from callflow.audio import Audio, write_wav
from callflow.runtime._vad import VadSettings

DTMF_KEYS = "1234567890*#ABCD"


def _masked(value: str, sensitive: bool) -> str:
    return "*" * len(value) if sensitive else value


@attrs.frozen(repr=False)
class Digits:
    """The caller entered ``value`` (without the ``finish_on_key``). Match it with
    ``case Digits("1"):`` or ``case Digits(value):``. With ``sensitive``, ``repr``/``str``
    mask the digits so a log line never shows them; ``sensitive`` takes no part in equality
    or hashing (``Digits("1234", sensitive=True) == Digits("1234")``)."""

    value: str
    sensitive: bool = attrs.field(default=False, kw_only=True, eq=False)

    def __repr__(self) -> str:
        return f"Digits({_masked(self.value, self.sensitive)!r})"


@attrs.frozen
class NoInput:
    """No key came within the ``timeout`` (Plivo GetDigits' no-input case)."""


@attrs.frozen(repr=False)
class Invalid:
    """The input broke a rule: a key outside ``valid_digits``, fewer than ``min_digits``, or a
    menu key with no choice. ``value`` is what was entered (masked in ``repr`` when
    ``sensitive``, which takes no part in equality)."""

    value: str = ""
    sensitive: bool = attrs.field(default=False, kw_only=True, eq=False)

    def __repr__(self) -> str:
        return f"Invalid({_masked(self.value, self.sensitive)!r})"


@attrs.frozen
class Speech:
    """The caller said ``text`` (an answer by voice: ``gather(input="dtmf speech")``,
    ``ask``). ``confidence`` is the recognizer's, 0 to 1 (the offline grammar recognizer
    reports 1.0 for any match). Match it with ``case Speech("sales"):``."""

    text: str
    confidence: float = attrs.field(default=1.0, eq=False)


GatherResult = Digits | Speech | NoInput | Invalid


def _dtmf_keys(keys: bool | str) -> bool | str:
    if isinstance(keys, bool):
        return keys
    bad = set(keys.upper()) - set(DTMF_KEYS)
    if bad:
        raise ValueError(f"barge-in keys must be DTMF keys (0-9 * # A-D), not {sorted(bad)}")
    return keys.upper()


@attrs.frozen
class BargeIn:
    """What may interrupt a prompt.

    Attributes:
        keys: DTMF keys that interrupt: ``True`` for any key, a string of keys (``"*#"``,
            upper-cased), or ``False`` for none.
        speech: caller speech interrupts (the VAD); ``True`` for the default
            :class:`VadSettings`, or settings of your own.

    Raises:
        ValueError: ``keys`` has a character that is not a DTMF key.
    """

    keys: bool | str = attrs.field(default=True, converter=_dtmf_keys)
    speech: bool | VadSettings = False

    @classmethod
    def of(cls, spec: bool | str | BargeIn) -> BargeIn | None:
        """Normalise ``say``'s ``barge_in`` argument: ``False`` → None (no barge-in),
        ``True`` → any key, ``"12"`` → those keys, ``"speech"`` → speech only.

        Raises:
            ValueError: a key string with a character that is not a DTMF key.
        """
        if isinstance(spec, BargeIn):
            return spec if (spec.keys or spec.speech) else None
        if spec is True:  # the common case: one shared instance (frozen), not one per say
            return _ANY_KEY if cls is BargeIn else cls(keys=True)
        if spec is False or spec == "":
            return None
        if spec == "speech":
            return cls(keys=False, speech=True)
        return cls(keys=spec)

    def matches_key(self, digit: str) -> bool:
        """Whether ``digit`` interrupts."""
        return self.keys is True or (isinstance(self.keys, str) and digit in self.keys)

    @property
    def vad(self) -> VadSettings | None:
        """The VAD settings when speech interrupts, else None."""
        if self.speech is True:
            return VadSettings()
        return self.speech or None


_ANY_KEY = BargeIn(keys=True)
"""``BargeIn.of(True)``: any key interrupts."""


@attrs.frozen
class Recording:
    """What :meth:`Call.record` captured.

    Attributes:
        audio: the caller's audio (int16 at the stream's rate).
        reason: why recording stopped: ``"silence"``, ``"max_length"``, ``"key"`` or
            ``"hangup"``.
        key: the key that stopped it (``finish_on_key``), else None.
        speech: whether the VAD heard speech at all.
    """

    audio: Audio
    reason: str
    key: str | None = None
    speech: bool = False

    @property
    def duration_s(self) -> float:
        """Seconds recorded."""
        return self.audio.duration_s

    def save(self, path: str | Path) -> None:
        """Write the recording as a 16-bit mono WAV file."""
        write_wav(path, self.audio)


@attrs.frozen
class MachineDetection:
    """Plivo's machine-detection callback for this call (seed ``004_…``): Plivo POSTed
    ``Machine=true`` to the ``machine_detection_url``. ``params`` holds everything it sent."""

    machine: bool
    params: Mapping[str, str]
