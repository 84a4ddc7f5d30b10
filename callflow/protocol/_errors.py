"""The one exception the protocol core raises for anything it cannot read or write."""

from __future__ import annotations

from callflow.observe import MAX_VALUE_CHARS, escape, quote

__all__ = ["ProtocolError"]

_RAW_SHOWN = MAX_VALUE_CHARS
"""How many characters of the offending text ``str(error)`` shows (escaped)."""

_MESSAGE_SHOWN = 2 * MAX_VALUE_CHARS
"""How many characters of the message ``str(error)`` shows (escaped)."""

_EVENT_SHOWN = 64
"""How many characters of an event tag ``str(error)`` shows (escaped)."""

_DTMF_WITHHELD = "values withheld: a dtmf message may carry a key of a PIN"


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
            Python).
        fields: every bad field's dotted path, ``field`` first (empty when ``field`` is
            ``None``).

    ``str(error)`` is one log-safe line whatever the input (:mod:`callflow.observe`): the event
    tag (at most 64 characters), message (400) and raw text (200) escaped and cut, so it is
    at most about 800 characters with no line break or control character. For a ``dtmf``
    event, or raw text that mentions ``dtmf``, neither the message nor the raw text is shown
    (the key may belong to a PIN): only the event and the bad fields.
    """

    def __init__(
        self,
        message: str,
        *,
        event: str | None = None,
        field: str | None = None,
        raw: str | None = None,
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.event = event
        self.field = field
        self.raw = raw
        self.fields = fields or ((field,) if field is not None else ())

    def __str__(self) -> str:
        where = f"{quote(self.event, _EVENT_SHOWN)} event" if self.event is not None else "message"
        if self.event == "dtmf" or (self.raw is not None and "dtmf" in self.raw.lower()):
            if self.fields:
                where += f", fields {escape(', '.join(self.fields), _MESSAGE_SHOWN)}"
            return f"bad Plivo {where}: {_DTMF_WITHHELD}"
        if self.field is not None:
            where += f", field {escape(self.field, _EVENT_SHOWN)}"
        text = f"bad Plivo {where}: {escape(self.message, _MESSAGE_SHOWN)}"
        if self.raw is not None:
            text += f" (raw: {escape(self.raw, _RAW_SHOWN)})"
        return text
