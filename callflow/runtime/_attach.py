"""``Line``: the socket a call is on, as opposed to the call itself (``_state.py``).

A :class:`Line` holds the call's transport and its one writer lock: every message to Plivo
goes through :meth:`Line.write`, so wire order is call order whichever task of the flow
writes. What a write failure means for the call (Plivo went away; a send that never
finished) is decided here.
"""

from __future__ import annotations

import logging

import trio

from callflow.runtime._config import RuntimeConfig
from callflow.runtime._state import CallState
from callflow.runtime._transport import Transport, TransportClosed

log = logging.getLogger("callflow.call")


class Line:
    """The transport ``call`` is on and its writer lock."""

    def __init__(self, call: CallState, transport: Transport, config: RuntimeConfig) -> None:
        self._call = call
        self.transport = transport
        """The connection carrying the stream now."""
        self._config = config
        self._write_lock = trio.StrictFIFOLock()

    async def write(self, message: str) -> None:
        """Send one message. The send itself is shielded from cancellation (a send cut in
        half would break the WebSocket for the whole call) but bounded by
        ``RuntimeConfig.write_timeout_s``, after which the stream is given up.

        Raises:
            CallEnded: the call is over, before or because of this write.
        """
        call = self._call
        call._raise_if_ended()
        async with self._write_lock:
            call._raise_if_ended()
            with trio.CancelScope(shield=True) as shield:
                shield.relative_deadline = self._config.write_timeout_s
                try:
                    await self.transport.send(message)
                except TransportClosed as exc:
                    # The call was not ended (checked above), so callflow did not close the
                    # stream: Plivo's side did, and the reader has not seen it yet. Same as
                    # the reader seeing it: no REST hangup for a call Plivo ended.
                    if call._ended is None:
                        call.ended_by_plivo = True
                    call._end(closed_reason(exc))
            if shield.cancelled_caught:
                log.error(
                    "call=%s Plivo did not take a message within %.0f s; ending the call",
                    call.call_id,
                    self._config.write_timeout_s,
                )
                call._end("write timed out")
                with trio.CancelScope(shield=True):
                    await self.transport.aclose(1011, "write timed out")
            call._raise_if_ended()

    async def aclose(self, code: int, reason: str) -> None:
        """Close the transport (idempotent)."""
        await self.transport.aclose(code, reason)


def closed_reason(exc: TransportClosed) -> str:
    """How a closed transport ends a call, for ``CallEnded.reason``."""
    return f"stream closed (code {exc.code})" if exc.code is not None else "stream closed"
