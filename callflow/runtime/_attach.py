"""``Line``: the socket a call is on, as opposed to the call itself (``_state.py``).

A :class:`Line` holds the call's current transport and its one writer lock: every message to
Plivo goes through :meth:`Line.write`, so wire order is call order whichever task of the flow
writes, across reconnects too.

Detach and re-attach (docs/reconnect.md): when the transport is lost (a close with one of
:data:`~callflow.runtime.LOST_LINK_CODES`, seen by the reader or by a write), the call is
*detached*: playback freezes where it was (``_resume.detached``), writes wait, and the call
lives on for ``RuntimeConfig.reconnect_grace_s``. A new stream for the same call
(:meth:`Line.attach`) re-attaches it: the unheard rest of the prompt and the pending
checkpoints are sent first (``_resume.resend``), then the waiting writes, in order. A new
stream while the old one still looks open takes over: the old one is let go and closed. No
re-attach within the window ends the call (pending operations raise ``CallEnded``).

Each transport the line lets go of is closed in the background, in the call's nursery
(:attr:`Line.closer`); :attr:`Attachment.done` is set once it is.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import trio

from callflow.runtime import _resume
from callflow.runtime._config import RuntimeConfig
from callflow.runtime._sync import FifoLock, Signal
from callflow.runtime._transport import Transport, TransportClosed, is_lost_link

if TYPE_CHECKING:
    from callflow.runtime._call import Call
    from callflow.runtime._reader import Reader

log = logging.getLogger("callflow.call")


class Attachment:
    """One transport the call is (or was) on; ``done`` is set once the line has let go of
    it and closed it (at a detach, a takeover or the end of the call)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.done = Signal()


class Line:
    """The transport ``call`` is on, its writer lock, and its detach/re-attach state."""

    def __init__(self, call: Call, transport: Transport, config: RuntimeConfig) -> None:
        self._call = call
        self._config = config
        self._write_lock = FifoLock()
        self._current: Attachment | None = Attachment(transport)
        self._attached = Signal()
        self._attached.set()
        self._resend_due = False
        self.detached_at: float | None = None
        """``trio.current_time()`` of the last detach, ``None`` until one happens."""
        self.detaches = 0
        """How often the call was detached."""
        self.reattaches = 0
        """How often a new stream re-attached the call."""
        self.closer: trio.Nursery | None = None
        """Where let-go transports are closed (the call's nursery, set by ``run_call``)."""
        self.reader: Reader | None = None
        """The call's reader, told when the line lets go of a transport (set by ``run_call``)."""

    @property
    def transport(self) -> Transport | None:
        """The connection carrying the stream now; ``None`` while detached."""
        return self._current.transport if self._current is not None else None

    @property
    def attachment(self) -> Attachment | None:
        """The current :class:`Attachment`; ``None`` while detached."""
        return self._current

    # -- writing -----------------------------------------------------------------------------

    async def write(self, message: str) -> None:
        """Send one message. The send itself is shielded from cancellation (a send cut in
        half would break the WebSocket for the whole call) but bounded by
        ``RuntimeConfig.write_timeout_s``, after which the stream is given up. While the
        call is detached, it waits for the re-attach (then sends after the re-sent audio);
        a message whose send the lost socket broke is not sent again (``playAudio`` and
        ``checkpoint`` are: they are in the ledger).

        Raises:
            CallEnded: the call is over, before or because of this write.
        """
        call = self._call
        call._raise_if_ended()
        async with self._write_lock:
            while True:
                await self.wait_attached()
                current = self._current
                assert current is not None
                if self._resend_due:
                    await self._resend(current)
                    continue
                await self._send(current, message)
                return

    def write_now(self, message: str) -> bool | None:
        """Write ``message`` at once, from synchronous code (the reader's dispatch), when no
        other write is under way or waiting: True when the socket took all of it; False when
        it took part, the rest queued (``await flush()`` next); ``None``, nothing done, when
        it cannot be now (a write under way, the call detached, a re-send due, a transport
        without ``send_nowait``): then ``await write()``."""
        current = self._current
        if current is None or self._resend_due or self._write_lock.locked():
            return None
        nowait = getattr(current.transport, "send_nowait", None)
        return nowait(message) if nowait is not None else None

    async def flush(self) -> None:
        """Write what a partial :meth:`write_now` left queued, shielded and bounded as
        :meth:`write` is (nothing to do while detached: that socket is gone).

        Raises:
            CallEnded: the call is over, before or because of this write.
        """
        async with self._write_lock:
            current = self._current
            if current is not None:
                await self._write_bounded(current, None)

    async def _send(self, current: Attachment, message: str) -> bool:
        """Send on ``current``; False when its link was lost (the call is detached)."""
        # A transport with send_nowait (the server's WebSocket) writes at once what the socket
        # takes, with no timeout scope: a deadline scope stays alive in trio's deadline heap
        # until it is pruned, and one per message kept thousands alive through the
        # collector's generations (docs/performance.md, 2026-12-06).
        nowait = getattr(current.transport, "send_nowait", None)
        sent = nowait(message) if nowait is not None else None
        if sent is True:
            return self._current is current
        # not sent: send it; sent in part (False): the rest is queued, flush it
        return await self._write_bounded(current, message if sent is None else None)

    async def _write_bounded(self, current: Attachment, message: str | None) -> bool:
        """``send(message)`` on ``current`` (``None``: flush what is queued), shielded and
        bounded by ``write_timeout_s``; False when its link was lost (the call is detached).

        Raises:
            CallEnded: the call is over, before or because of this write.
        """
        call = self._call
        transport = current.transport
        with trio.CancelScope(shield=True) as shield:
            shield.relative_deadline = self._config.write_timeout_s
            try:
                if message is not None:
                    await transport.send(message)
                else:
                    await cast(Any, transport).flush()
            except TransportClosed as exc:
                # The call was not ended (checked before), so callflow did not close the
                # stream: Plivo's side did, and the reader has not seen it yet. Same as the
                # reader seeing it: no REST hangup for a call Plivo ended.
                self.lost(current.transport, exc, closed_reason(exc))
        if shield.cancelled_caught:
            log.error(
                "call=%s Plivo did not take a message within %.0f s; ending the call",
                call.call_id,
                self._config.write_timeout_s,
            )
            call._end("write timed out")
            with trio.CancelScope(shield=True):
                await current.transport.aclose(1011, "write timed out")
        call._raise_if_ended()
        return self._current is current

    async def _resend(self, current: Attachment) -> None:
        """Rebuild Plivo's queue on a new socket (under the write lock), then log the
        re-attach once."""
        call = self._call
        self._resend_due = False
        messages, resent = _resume.resend(call)
        for message in messages:
            if not await self._send(current, message):
                return  # lost again: the next re-attach re-sends from the same point
        call._ledger.resumed(trio.current_time())
        gap = trio.current_time() - (self.detached_at or 0.0)
        call._metrics.detach_gap.observe(gap)
        log.info(
            "call=%s re-attached after %.2f s (stream %s): %s",
            call.call_id,
            gap,
            call.info.stream_id,
            resent,
        )

    # -- losing the socket -------------------------------------------------------------------

    def lost(self, transport: Transport, exc: TransportClosed, reason: str) -> None:
        """``transport`` closed with ``exc``: detach the call if that was a lost link and
        reconnects are allowed, else end the call with ``reason`` (Plivo ended it). A
        transport the line already let go of changes nothing."""
        call = self._call
        current = self._current
        if call._ended is not None or current is None or current.transport is not transport:
            return
        if is_lost_link(exc) and self._config.reconnect_grace_s > 0:
            self._detach(current, f"socket lost ({_code(exc)})")
        else:
            call.ended_by_plivo = True
            call._end(reason)

    def _detach(self, current: Attachment, why: str, *, takeover: bool = False) -> None:
        call = self._call
        now = trio.current_time()
        self._current = None
        self._attached = Signal()
        self.detached_at = now
        heard = _resume.detached(call, now)
        if takeover:  # (logged by attach; the new socket is there already)
            self._let_go(current, 1000, why)
            return
        self.detaches += 1
        call._metrics.detaches.inc()
        log.warning(
            "call=%s detached: %s; played for sure up to %.2f s (%.2f s sent after it); "
            "waiting up to %.1f s for Plivo to reconnect",
            call.call_id,
            why,
            heard,
            max(0.0, call._ledger.sent_s - heard),
            self._config.reconnect_grace_s,
        )
        self._let_go(current, 1006, why)

    def _let_go(self, attachment: Attachment, code: int, reason: str) -> None:
        """Stop reading ``attachment`` and close it in the background."""
        if self.reader is not None:
            self.reader.let_go(attachment.transport)
        if self.closer is None:
            attachment.done.set()
            return
        self.closer.start_soon(self._close, attachment, code, reason)

    async def _close(self, attachment: Attachment, code: int, reason: str) -> None:
        with trio.CancelScope(shield=True):
            try:
                await attachment.transport.aclose(code, reason)
            finally:
                attachment.done.set()

    # -- attaching ---------------------------------------------------------------------------

    async def wait_attached(self) -> Transport:
        """The current transport, waiting while the call is detached. The reconnect window
        running out ends the call (logged once).

        Raises:
            CallEnded: the call is over, or ends while waiting.
        """
        call = self._call
        while self._current is None:
            call._raise_if_ended()
            deadline = (self.detached_at or 0.0) + self._config.reconnect_grace_s
            with trio.move_on_at(deadline):
                await call._wait_or_end(self._attached)
            if self._current is None and call._ended is None and trio.current_time() >= deadline:
                log.warning(
                    "call=%s no reconnect within %.1f s of the socket loss; the call ends",
                    call.call_id,
                    self._config.reconnect_grace_s,
                )
                call._metrics.detaches_expired.inc()
                call.ended_by_plivo = True
                call._end(f"stream lost: no reconnect within {self._config.reconnect_grace_s:g} s")
        call._raise_if_ended()
        return self._current.transport

    async def attach(self, transport: Transport) -> Attachment:
        """Put the call on ``transport`` (a new stream for it, whose ``start`` checked out):
        a detached call re-attaches; one still on an open socket is taken over (the old
        socket is closed). Returns once the unheard audio has been sent again.

        Raises:
            CallEnded: the call is over.
        """
        call = self._call
        call._raise_if_ended()
        old = self._current
        if old is not None:
            log.info(
                "call=%s a new stream for this call takes over from the one still open",
                call.call_id,
            )
            self._detach(old, "taken over by a new stream", takeover=True)
        attachment = Attachment(transport)
        self._current = attachment
        self._resend_due = True
        self.reattaches += 1
        self._attached.set()
        async with self._write_lock:
            if self._resend_due and self._current is attachment:
                await self._resend(attachment)
        return attachment

    async def aclose(self, code: int, reason: str) -> None:
        """Close the current transport (idempotent); its attachment is then done."""
        current = self._current
        if current is None:
            return
        try:
            await current.transport.aclose(code, reason)
        finally:
            current.done.set()


def closed_reason(exc: TransportClosed) -> str:
    """How a closed transport ends a call, for ``CallEnded.reason``."""
    return f"stream closed (code {exc.code})" if exc.code is not None else "stream closed"


def _code(exc: TransportClosed) -> str:
    return f"code {exc.code}" if exc.code is not None else "no close code"
