"""The reader's synchronous dispatch: each message from Plivo parsed and handed to its call
where the transport reads it (PROTOCOL.md §2), with no task or channel hop per message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from callflow.observe import MAX_CALL_ID_CHARS, FlowMetrics, quote
from callflow.protocol import (
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    ProtocolError,
    Start,
    Stop,
    UnknownEvent,
    load_event,
    parse_loaded,
)
from callflow.runtime import _warnings

if TYPE_CHECKING:
    from callflow.runtime._call import Call

log = logging.getLogger("callflow.call")


class Dispatcher:
    """The reader's dispatch for ``call``: :meth:`dispatch` is the :data:`Dispatch` function.

    ``dispatch(text)`` parses one message from Plivo and hands it to the call, synchronously
    (PROTOCOL.md §2): media to listeners (a frame nobody listens to is only counted: its
    fields are neither checked nor decoded), keys to the type-ahead buffer,
    ``playedStream`` / ``clearedAudio`` to the ledger's waiters. Unreadable and unknown
    messages are logged with the call id and skipped. It returns True when the
    reader task must act: a barge-in wants its ``clearAudio`` sent, or Plivo sent ``stop``
    (then :attr:`stopped` is True). It never raises for anything Plivo sends.

    A slotted object and one bound method, not a closure: a call keeps it for its whole life,
    and five cells and two functions are ~500 bytes more (docs/performance.md).
    """

    __slots__ = ("_call", "_metrics", "stopped")

    def __init__(self, call: Call, metrics: FlowMetrics) -> None:
        self._call = call
        self._metrics = metrics
        self.stopped = False
        """Whether Plivo has sent ``stop``."""

    def dispatch(self, text: str) -> bool:
        """Handle one message from Plivo (class doc); True when the reader must act."""
        call = self._call
        try:
            tag, obj = load_event(text)
            if tag == "media":
                call.frames_received += 1
                if not call._wants_media:
                    return False  # nobody listens: counted, not built, not decoded
            event = parse_loaded(tag, obj, text)
        except ProtocolError as exc:
            call.protocol_errors += 1
            self._metrics.protocol_error("unreadable")
            _warnings.UNREADABLE.warning(call._log_key, "unreadable message from Plivo: %s", exc)
            return False
        if type(event) is Media:
            call._on_media(event.payload, event.track)
            # speech barged in: clearAudio goes out from here, or the reader task sends it
            return call._barge_in_pending and not call._barge_in_clear_now()
        if type(event) is Dtmf:
            call._on_dtmf(event.digit)
            # a key barged in: clearAudio goes out from here, or the reader task sends it
            return call._barge_in_pending and not call._barge_in_clear_now()
        if type(event) is PlayedStream:
            call._on_played(event.name)
        elif type(event) is ClearedAudio:
            call._on_cleared()
        elif type(event) is Stop:
            log.info("call=%s stop event from Plivo", call.call_id)
            call.ended_by_plivo = True
            call._end("stream stopped by Plivo")
            self.stopped = True
            return True
        elif type(event) is UnknownEvent:
            self._metrics.protocol_error("unknown_event")
            _warnings.UNKNOWN_EVENTS.warning(
                call._log_key,
                "unknown event %s from Plivo; ignored",
                quote(event.event, MAX_CALL_ID_CHARS),
            )
        elif type(event) is Start:
            self._metrics.protocol_error("second_start")
            _warnings.OUT_OF_ORDER.warning(call._log_key, "second start event; ignored")
        return False
