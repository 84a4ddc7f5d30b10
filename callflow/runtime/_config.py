"""The values a call is described by: :class:`RuntimeConfig` (per-call limits),
:class:`CallInfo` (who and what the call is), and the results :class:`Playback` and
:class:`StatusEvent`. Pure values, no trio."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import attrs

from callflow.audio import chunk_bytes
from callflow.protocol import ExtraHeaders, Format

MIN_LEAD_S = max(chunk_bytes(fmt) / fmt.bytes_per_second for fmt in Format)
"""The shortest ``RuntimeConfig.max_lead_s``: the longest ``playAudio`` chunk of any format,
1.52 s of μ-law (``callflow.audio.chunk_bytes``). A chunk is never split, so a smaller lead
could not be kept."""


def _lead(_: object, __: object, value: float) -> None:
    if not value >= MIN_LEAD_S:
        raise ValueError(
            f"max_lead_s must be at least {MIN_LEAD_S:.2f} s (one playAudio chunk), not {value}"
        )


KeyPolicy = Literal["keep", "discard"]
"""What happens to keys pressed during a prompt no key can stop (``uninterruptible_keys``)."""

KEY_POLICIES: tuple[KeyPolicy, ...] = ("keep", "discard")


def check_key_policy(value: object) -> KeyPolicy:
    """``value`` if it is a :data:`KeyPolicy`.

    Raises:
        ValueError: anything else.
    """
    for policy in KEY_POLICIES:
        if value == policy:
            return policy
    raise ValueError(f"uninterruptible_keys must be 'keep' or 'discard', not {value!r}")


def _key_policy(_: object, __: object, value: object) -> None:
    check_key_policy(value)


@attrs.frozen(kw_only=True)
class RuntimeConfig:
    """Per-call runtime limits. All durations are seconds.

    Attributes:
        start_timeout_s: how long to wait for Plivo's ``start`` event after the socket opens.
        max_lead_s: the most audio callflow keeps queued at Plivo beyond what checkpoint acks
            confirm played (Plivo's queue holds about 60 s, PROTOCOL.md §3). Bounds how long a
            ``clear`` has to drop and how far ``heard_s`` can lag. At least
            :data:`MIN_LEAD_S` (1.52 s, one chunk).
        mark_interval_s: a checkpoint is sent whenever this much audio has been sent without
            one, so acks keep flowing for long or streamed prompts.
        clear_timeout_s: how long ``clear`` waits for ``clearedAudio`` before assuming it.
        hangup_grace_s: after the stream closes, how long the flow may run its clean-up
            (``finally`` blocks) before it is cancelled.
        drain_timeout_s: extra time, beyond the queued audio's duration, that a flow returning
            normally waits for its queued audio to play before the stream is closed.
        dtmf_buffer: type-ahead keys kept; beyond it the oldest is dropped and logged.
        write_timeout_s: how long one send to Plivo may take before the call is given up.
        ack_grace_s: the bound on a checkpoint ack (``playedStream``). Plivo plays queued
            audio in real time and acks a checkpoint once the audio before it has played, so
            with ``q`` seconds of audio ahead of the oldest pending checkpoint its ack is
            due after ``q`` seconds and one round trip. If none comes within
            ``q + max(ack_grace_s, q)`` (at least twice the audio, and 5 s more by default:
            a congested link, never a healthy one), Plivo is not playing our audio: the
            stall is logged once per call, ``clearAudio`` is sent, and the ``say`` waiting
            returns ``completed=False, interrupted_by="no_ack"`` (``checkpoint`` returns
            False, ``play`` goes on) instead of waiting for ever.
        uninterruptible_keys: what happens to keys pressed while a ``say`` that no key can
            stop is playing: ``"keep"`` (the default) keeps them as type-ahead for the next
            input, ``"discard"`` drops them, as VoiceXML does when ``bargein`` is false. Each
            call starts with this and may change it (``call.uninterruptible_keys``).
        reconnect_grace_s: how long a call whose socket was lost (no close handshake, or an
            abnormal close code: ``callflow.runtime.LOST_LINK_CODES``) stays *detached*,
            waiting for Plivo to reconnect, before it ends. Plivo retries a dropped stream
            twice, to the same URL (PROTOCOL.md §1) and does not document the delay; each
            retry is one TCP (+TLS) connect and WebSocket handshake, well under a second on a
            healthy path. The default, 10 s, gives two retries 3 s each and 4 s to spare.
            While detached the flow runs on; its writes wait; a re-attach re-sends the
            unheard rest of the prompt (docs/reconnect.md). ``0`` ends the call at once on
            any close, as before reconnects existed.

    Raises:
        ValueError: ``max_lead_s`` below :data:`MIN_LEAD_S`; ``uninterruptible_keys`` not
            ``"keep"`` or ``"discard"``.
    """

    start_timeout_s: float = 10.0
    max_lead_s: float = attrs.field(default=5.0, validator=_lead)
    mark_interval_s: float = 0.5
    clear_timeout_s: float = 2.0
    hangup_grace_s: float = 2.0
    drain_timeout_s: float = 2.0
    dtmf_buffer: int = 64
    write_timeout_s: float = 10.0
    ack_grace_s: float = 5.0
    uninterruptible_keys: KeyPolicy = attrs.field(default="keep", validator=_key_policy)
    reconnect_grace_s: float = 10.0


DEFAULT_CONFIG: Final = RuntimeConfig()
"""The defaults, one instance for every call that is given no config (it is frozen)."""


@attrs.frozen(kw_only=True)
class CallInfo:
    """Who and what the call is, from Plivo's ``start`` event and the answer webhook.

    Attributes:
        call_id: Plivo's CallUUID (``start.callId``).
        stream_id: ``start.streamId``; names this stream in every outbound message.
        account_id: ``start.accountId``.
        tracks: ``start.tracks``, e.g. ``("inbound",)``.
        format: the stream's audio :class:`Format` both ways.
        extra_headers: the ``extraHeaders`` of the ``<Stream>``, parsed (raw string kept on
            ``extra_headers.raw``).
        answer_params: the answer webhook's form parameters (``CallUUID``, ``From``, ``To``,
            ``Direction``, ``CallStatus``, …; PROTOCOL.md §1), empty when unknown.
    """

    call_id: str
    stream_id: str
    account_id: str
    tracks: tuple[str, ...]
    format: Format
    extra_headers: ExtraHeaders
    answer_params: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Playback:
    """The outcome of :meth:`Call.say`.

    Attributes:
        completed: True when Plivo confirmed the whole prompt played.
        duration_s: the prompt's length in seconds (of what was sent).
        heard_s: how much of it the caller heard, in seconds, to within one chunk (from
            checkpoint acks; equals ``duration_s`` when completed).
        interrupted_by: what stopped it early: the DTMF digit that barged in (``"5"``),
            ``"speech"``, ``"cleared"`` (another task called ``clear()``), or ``None`` when
            completed. (A hangup raises :class:`CallEnded` instead; a cancelled ``say``
            re-raises the cancellation after clearing.)
    """

    completed: bool
    duration_s: float
    heard_s: float
    interrupted_by: str | None = None


@attrs.frozen
class StatusEvent:
    """A status callback Plivo sent for this call (PROTOCOL.md §6), with all its params.

    Attributes:
        event: the ``Event`` param (an open string: ``StartStream``, ``StopStream``,
            ``PlayedStream``, ``started``, …).
        params: every form param Plivo sent.
    """

    event: str
    params: Mapping[str, str]
