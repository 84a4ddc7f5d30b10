"""The one exception the protocol core raises for anything it cannot read or write."""

from __future__ import annotations

__all__ = ["ProtocolError"]

_RAW_SHOWN = 200
"""How many characters of the offending text ``str(error)`` shows."""


class ProtocolError(ValueError):
    """A message that does not follow Plivo's audio-stream protocol (PROTOCOL.md §2-§3).

    Raised for every way a message can be unreadable: text that is not JSON, JSON that is not
    an object, a missing or non-string ``event``, a missing or mistyped required field, a DTMF
    digit outside ``0-9 * # A-D``, a bad base64 payload (by :meth:`Media.audio_bytes`), an
    outbound command that Plivo does not know (by :func:`parse_command`) and a command that
    cannot be sent (for instance :class:`SendDTMF` with a bad digit). It subclasses
    :class:`ValueError`, so ``except ValueError`` also catches it.

    Attributes:
        message: what is wrong, without the event, field or raw text.
        event: the message's ``event`` tag (``"start"``, ``"sendDTMF"``…) when it is known,
            else ``None``.
        field: the dotted path of the bad value in the wire JSON, such as
            ``start.mediaFormat.sampleRate`` or ``start.tracks[1]``; ``"event"`` when the tag
            itself is missing or unknown; ``None`` when the whole text is unreadable.
        raw: the whole offending text (``bytes`` input is decoded as UTF-8 with
            replacement characters), or ``None`` when there is no text (a command built in
            Python). ``str(error)`` shows its first 200 characters.
    """

    def __init__(
        self,
        message: str,
        *,
        event: str | None = None,
        field: str | None = None,
        raw: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.event = event
        self.field = field
        self.raw = raw

    def __str__(self) -> str:
        where = f"{self.event!r} event" if self.event is not None else "message"
        if self.field is not None:
            where += f", field {self.field}"
        text = f"bad Plivo {where}: {self.message}"
        if self.raw is not None:
            shown = self.raw[:_RAW_SHOWN]
            ellipsis = "…" if len(self.raw) > _RAW_SHOWN else ""
            text += f" (raw: {shown}{ellipsis})"
        return text
