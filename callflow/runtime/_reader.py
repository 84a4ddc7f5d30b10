"""The call's one reader: where Plivo's messages reach the call, with a task only when one
must act.

Each message is parsed and dispatched inline by
:meth:`~callflow.runtime._dispatch.Dispatcher.dispatch`, where the transport reads it: no
task or channel hop per message. On a :class:`~callflow.runtime.Parkable` transport (the
server's stream sockets, read by the server's one read loop) no task waits between messages
either: the reader *parks* the transport and ends its task. A task is started again, in the
call's nursery, only when one must act: a barge-in's ``clearAudio`` the socket would not take
at once, work the WebSocket protocol hands back (a ping to answer, a close), the stream's
``stop``, a dispatch that raised. It parks the transport again once that is done. An idle
call thus holds no reader task, no coroutine stack and no cancel scope for it
(docs/performance.md, "Memory per idle call"). On any other transport
(:class:`~callflow.runtime.MemoryTransport` in tests) a task reads, in a cancel scope, for as
long as the call is on it.

A lost socket detaches the call and the reader waits for the re-attach
(``Line.wait_attached``); any other close ends the call, and the flow gets
``RuntimeConfig.hangup_grace_s`` to finish before the call's nursery is cancelled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

import outcome
import trio

from callflow.runtime._config import RuntimeConfig
from callflow.runtime._dispatch import Dispatcher
from callflow.runtime._errors import CallEnded
from callflow.runtime._sync import Signal
from callflow.runtime._transport import (
    Parkable,
    Transport,
    TransportClosed,
    receive_until,
)

if TYPE_CHECKING:
    from callflow.observe import FlowMetrics
    from callflow.runtime._call import Call

log = logging.getLogger("callflow.call")


class Reader:
    """Reads ``call``'s current transport until the stream ends (module doc).

    ``nursery`` is the call's: the reader's tasks run there, and once the stream has ended
    (and the flow has finished, or its ``hangup_grace_s`` is spent) the reader cancels it.
    ``flow_done`` is set by whoever runs the flow when it returns.

    Resource handling: :meth:`start` once; :meth:`stop` before the nursery closes (it
    unparks the transport, so nothing calls into the reader after the call).
    """

    __slots__ = (
        "_call",
        "_closed",
        "_config",
        "_dispatch",
        "_dispatcher",
        "_flow_done",
        "_nursery",
        "_parked",
        "_reading",
    )

    def __init__(
        self,
        call: Call,
        nursery: trio.Nursery,
        flow_done: Signal,
        config: RuntimeConfig,
        metrics: FlowMetrics,
    ) -> None:
        self._call = call
        self._nursery = nursery
        self._flow_done = flow_done
        self._config = config
        self._dispatcher = Dispatcher(call, metrics)
        self._dispatch = self._dispatcher.dispatch  # (one bound method for the call's life)
        self._parked: Transport | None = None
        """The transport the read loop reads for us, with no task of ours waiting."""
        self._reading: tuple[Transport, trio.CancelScope] | None = None
        """The transport a task of ours is reading, and the scope that stops it."""
        self._closed = False

    def start(self) -> None:
        """Start reading the call's current transport."""
        self._spawn(None, None)

    def stop(self) -> None:
        """No more reading: unpark the transport; no task is started after this (one still
        running ends with the nursery)."""
        self._closed = True
        parked, self._parked = self._parked, None
        if parked is not None:
            cast(Parkable, parked).unpark()

    def let_go(self, transport: Transport) -> None:
        """Stop reading ``transport``, which the line has let go of (a takeover, or a detach
        a write saw), and go on with the call's next transport."""
        parked = self._parked
        if parked is not None and parked is transport:
            self._parked = None
            cast(Parkable, parked).unpark()
            self._spawn(None, None)
        elif self._reading is not None and self._reading[0] is transport:
            self._reading[1].cancel()

    def _woken(self, result: outcome.Outcome[bool]) -> None:
        """The parked transport has work for a task (:data:`~callflow.runtime.Woken`)."""
        transport, self._parked = self._parked, None
        self._spawn(transport, result)

    def _spawn(self, transport: Transport | None, result: outcome.Outcome[bool] | None) -> None:
        if not self._closed:
            self._nursery.start_soon(self._run, transport, result)

    async def _run(self, transport: Transport | None, woken: outcome.Outcome[bool] | None) -> None:
        """One reader task: from ``woken`` (what the parked ``transport`` woke it for), read
        until the transport parks again, or to the stream's end."""
        call, line, dispatch = self._call, self._call._line, self._dispatch
        try:
            if woken is not None and woken.unwrap():  # (raises what the dispatch raised)
                await call._barge_in_clear()  # a barge-in the dispatch could not finish
            while not self._dispatcher.stopped:
                if transport is None or line.transport is not transport:
                    transport = await line.wait_attached()
                if (
                    not self._closed  # (a task started just before stop() must not park)
                    and isinstance(transport, Parkable)
                    and transport.park(dispatch, self._woken)
                ):
                    self._parked = transport
                    return  # the read loop reads for us now; ``_woken`` starts the next task
                with trio.CancelScope() as scope:
                    self._reading = (transport, scope)
                    try:
                        if isinstance(transport, Parkable):
                            await transport.receive_once(dispatch)
                        else:
                            await receive_until(transport, dispatch)
                    except TransportClosed as exc:
                        line.lost(transport, exc, f"stream closed by Plivo (code {exc.code})")
                        transport = None
                    finally:
                        self._reading = None
                if scope.cancelled_caught:  # let go of
                    transport = None
                await call._barge_in_clear()  # if the dispatch asked for one
        except CallEnded:
            pass
        except Exception:  # a defect in dispatch: this call ends, nothing else is touched
            log.exception("call=%s reader failed; ending this call", call.call_id)
            call._end("reader failed")
        except trio.Cancelled:
            # The call's nursery is being cancelled (by whoever runs the call, e.g. a drain
            # deadline): no event from Plivo will be read again, so end the call now. Otherwise
            # the flow's shielded clean-up (a clear waiting for ``clearedAudio``) would wait out
            # its timeout for an ack nobody can deliver.
            call._end("call cancelled")
            raise
        if not self._flow_done.is_set():
            with trio.move_on_after(self._config.hangup_grace_s):
                await self._flow_done.wait()
        self._nursery.cancel_scope.cancel()
