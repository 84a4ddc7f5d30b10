"""The first message of a stream: Plivo's ``start``, checked before any flow runs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from callflow.observe import MAX_CALL_ID_CHARS, FlowMetrics, call_label, quote
from callflow.protocol import ProtocolError, Start, UnknownEvent, parse
from callflow.runtime import _warnings
from callflow.runtime._config import RuntimeConfig
from callflow.runtime._timeouts import PhaseTimeouts
from callflow.runtime._transport import Transport

if TYPE_CHECKING:
    from callflow._flow import Flow

log = logging.getLogger("callflow.call")


class Refused(Exception):
    """A stream refused before its flow starts: ``code`` and ``reason`` go in the close
    frame; the message (one log line) names the call and the field."""

    def __init__(self, message: str, code: int = 1008, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or message[:120]


async def wait_for_start(
    transport: Transport,
    config: RuntimeConfig,
    flow: Flow,
    answered: str,
    metrics: FlowMetrics,
    call_uuid: str | None = None,
    *,
    timeouts: PhaseTimeouts | None = None,
) -> Start:
    """The stream's ``start`` event; anything before it is logged and skipped.

    ``answered`` (``call=<CallUUID>`` of the answer webhook) starts each log line and refusal
    until ``start`` names the call. With ``call_uuid`` (the call the stream token was issued
    for), ``start.callId`` must be that call: a stream cannot take another call's place, its
    status callbacks or its machine detection.

    ``timeouts`` bounds the wait without a deadline scope of its own (the server's; else
    ``trio.move_on_after``).

    Raises:
        Refused: no ``start`` within ``config.start_timeout_s`` seconds, one naming another
            call than ``call_uuid`` (1008), or one whose media format is unreadable or not
            the flow's (1003).
        TransportClosed: the stream closed first.
    """
    limit = timeouts.limit if timeouts is not None else trio.move_on_after
    with limit(config.start_timeout_s):
        while True:
            text = await transport.receive()
            try:
                event = parse(text)
            except ProtocolError as exc:
                metrics.protocol_error("before_start")
                _warnings.UNREADABLE.warning(
                    answered, "flow=%s before start: unreadable message: %s", flow.path, exc
                )
                continue
            if isinstance(event, UnknownEvent):
                metrics.protocol_error("before_start")
                _warnings.UNKNOWN_EVENTS.warning(
                    answered,
                    "flow=%s before start: ignoring unknown event %s",
                    flow.path,
                    quote(event.event, MAX_CALL_ID_CHARS),
                )
                continue
            if not isinstance(event, Start):
                metrics.protocol_error("before_start")
                log.warning(
                    "%s flow=%s before start: ignoring %s event",
                    answered,
                    flow.path,
                    type(event).__name__,
                )
                continue
            if call_uuid is not None and event.call_id != call_uuid:
                metrics.protocol_error("call_mismatch")
                raise Refused(
                    f"{answered} field start.callId: the stream names call "
                    f"{quote(event.call_id, MAX_CALL_ID_CHARS)}, not the call its stream token "
                    "was issued for",
                    reason="start.callId is not the token's call",
                )
            try:
                fmt = event.format
            except ProtocolError as exc:
                metrics.protocol_error("wrong_format")
                raise Refused(f"{call_label(event.call_id)} {exc}") from None
            if fmt is not flow.format:
                metrics.protocol_error("wrong_format")
                raise Refused(
                    f"{call_label(event.call_id)} field start.mediaFormat: the stream is "
                    f"{fmt.content_type} but flow {flow.path} declares "
                    f"{flow.format.content_type}",
                    code=1003,
                    reason="wrong audio format",
                )
            return event
    metrics.protocol_error("no_start")
    raise Refused(
        f"{answered} flow={flow.path} no start event within {config.start_timeout_s:.0f} s"
    )
