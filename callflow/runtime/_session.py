"""Runs one flow for one call: the per-call nursery, the reader, and every way a call ends.

Exception policy (decided once, here): no exception from a call's tasks ever leaves
:func:`run_call`. The reader turns unreadable input into a log line and goes on; the flow's
exceptions are logged once with the call id; the nursery only ever sees cancellation. So one
call's trouble never reaches the server or another call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from callflow.observe import (
    CALL_CONTEXT,
    MAX_CALL_ID_CHARS,
    METRICS,
    FlowMetrics,
    bind_call,
    call_label,
    escape,
)
from callflow.protocol import (
    Start,
)
from callflow.runtime import _warnings
from callflow.runtime._call import Call, CallInfo, RuntimeConfig
from callflow.runtime._dispatch import dispatcher
from callflow.runtime._errors import CallEnded
from callflow.runtime._live import Claim, LiveCalls
from callflow.runtime._rest import PlivoRest
from callflow.runtime._start import Refused, wait_for_start
from callflow.runtime._sync import Signal
from callflow.runtime._transport import Transport, TransportClosed, receive_until

__all__ = ["DRAINED_REASON", "LiveCalls", "run_call"]

if TYPE_CHECKING:
    from callflow._flow import Flow

log = logging.getLogger("callflow.call")


async def run_call(
    flow: Flow,
    transport: Transport,
    *,
    answer_params: Mapping[str, str] | None = None,
    live_calls: LiveCalls | None = None,
    config: RuntimeConfig | None = None,
    rest: PlivoRest | None = None,
    answered_at: float | None = None,
    call_uuid: str | None = None,
) -> None:
    """Run ``flow`` for the call whose stream arrives on ``transport``, until the call ends;
    or, for a call already live here, put that call on ``transport`` (a reconnect).

    Waits for Plivo's ``start`` (at most ``config.start_timeout_s``), checks that the stream's
    format is the flow's, then runs the flow and a reader task in one nursery. The call ends
    when the flow returns (its queued audio is given time to play, then the stream is closed,
    so the ``<Hangup/>`` after ``<Stream>`` runs), when the flow raises (logged once with the
    call id), or when Plivo closes the stream (pending operations raise
    :class:`CallEnded`; the flow gets ``config.hangup_grace_s`` to finish its clean-up, then is
    cancelled). A socket *lost* (no close handshake, or a close code in
    :data:`~callflow.runtime.LOST_LINK_CODES`) only detaches the call for
    ``config.reconnect_grace_s`` (docs/reconnect.md). Nothing started here outlives the call.

    With ``call_uuid`` (the call the stream token names) and ``live_calls``, one stream per
    call: ``start.callId`` must be ``call_uuid`` (else the stream is closed with 1008); if
    that call is live here, this stream re-attaches to it (taking over from a socket that
    still looks open) and this returns once the call lets go of it; a stream for a call that
    ended here is refused with 1008; a stream for a call whose first stream still waits for
    ``start`` replaces that one.

    ``answered_at`` (Unix seconds) is when the answer webhook was answered, for the
    ``callflow_answer_to_start_seconds`` metric. Every log line of the call carries its ids
    and flow path (:func:`callflow.observe.bind_call`); its metrics are labelled by
    ``flow.path``.

    Never raises for anything the call does; closes ``transport`` before returning.
    Cancelling the caller's scope ends the call at once (outcome ``drained``).
    """
    config = config or RuntimeConfig()
    metrics = METRICS.for_flow(flow.path)
    # Until ``start`` names the call, it is the one the stream token or answer webhook was for.
    answered_uuid = call_uuid or (answer_params or {}).get("CallUUID")
    answered = call_label(answered_uuid)
    context = bind_call(call_id=answered_uuid, flow=flow.path)
    try:
        claim: Claim | None = None
        if call_uuid is not None and live_calls is not None:
            live = live_calls.get(call_uuid)
            if live is not None and not live.ended:
                metrics.reconnects.inc()
                await _rejoin(flow, live, transport, config, answered, metrics)
                return
            if live_calls.has_ended(call_uuid):
                log.warning("%s a stream for a call that has ended; refused with 1008", answered)
                metrics.outcomes["refused"].inc()
                await transport.aclose(1008, "call has ended")
                return
            claim = live_calls.claim(call_uuid)
        await _run_started(
            flow,
            transport,
            answer_params,
            live_calls,
            config,
            rest,
            metrics,
            answered,
            answered_at,
            claim,
        )
    finally:
        CALL_CONTEXT.reset(context)  # the caller's (a connection task's) context again


async def _run_started(
    flow: Flow,
    transport: Transport,
    answer_params: Mapping[str, str] | None,
    live_calls: LiveCalls | None,
    config: RuntimeConfig,
    rest: PlivoRest | None,
    metrics: FlowMetrics,
    answered: str,
    answered_at: float | None,
    claim: Claim | None,
) -> None:
    start: Start | None = None
    try:
        with claim.scope if claim is not None else contextlib.nullcontext():
            start = await wait_for_start(
                transport, config, flow, answered, metrics, claim.call_uuid if claim else None
            )
    except Refused as refused:
        log.error("%s; closing the stream", refused)
        metrics.outcomes["refused"].inc()
        await transport.aclose(refused.code, refused.reason)
        return
    except TransportClosed:
        log.info("%s stream closed before start (flow %s)", answered, flow.path)
        metrics.outcomes["hung_up"].inc()
        return
    finally:
        _warnings.flush(answered)
        if claim is not None and live_calls is not None:
            live_calls.unclaim(claim)
    if start is None:  # a newer stream for the same call replaced this one
        log.info("%s a newer stream for this call replaced this one before start", answered)
        await transport.aclose(1000, "replaced by a newer stream")
        return
    bind_call(call_id=start.call_id, stream_id=start.stream_id, flow=flow.path)
    if answered_at is not None:
        metrics.answer_to_start.observe(max(0.0, time.time() - answered_at))

    info = CallInfo(
        call_id=start.call_id,
        stream_id=start.stream_id,
        account_id=start.account_id,
        tracks=start.tracks,
        format=flow.format,
        extra_headers=start.extra_headers,
        answer_params=dict(answer_params or {}),
    )
    call = Call(info, transport, config, rest, metrics, tts=flow.tts, stt=flow.stt)
    line = call._line
    if live_calls is not None:
        live_calls.add(call)
    metrics.calls_active.inc()
    flow_raised = cancelled = False
    log.info(
        "%s stream=%s started flow %s (%s)",
        call._log_key,
        escape(start.stream_id, MAX_CALL_ID_CHARS),
        flow.name,
        flow.format.content_type,
    )
    try:
        async with trio.open_nursery() as nursery:
            line.closer = nursery
            flow_done = Signal()
            nursery.start_soon(_read, call, flow_done, nursery.cancel_scope, config, metrics)
            flow_raised = await _run_flow(flow, call, metrics)
            flow_done.set()
            if not call.ended:
                await _drain(call, config)
            call._end("flow finished")
            nursery.cancel_scope.cancel()
    except BaseException:  # only cancellation gets here (exception policy): the server's
        cancelled = True  # drain deadline, or whoever runs the call, ended it
        raise
    finally:
        line.closer = None
        metrics.calls_active.dec()
        metrics.outcomes[_outcome(call, flow_raised=flow_raised, cancelled=cancelled)].inc()
        if live_calls is not None:
            live_calls.discard(call)
        call._end(call._ended.reason if call._ended else "flow finished")
        await call._rest_hangup()
        with trio.CancelScope(shield=True):
            # 1011 (RFC 6455: an unexpected condition) tells the other end the flow raised
            code, reason = (1011, "flow error") if flow_raised else (1000, "call ended")
            await line.aclose(code, reason)
            await transport.aclose(code, reason)
        _warnings.flush(call._log_key)
        log.info(
            "call=%s ended: %s (%d frames in, %d unreadable%s)",
            call.call_id,
            call._ended.reason if call._ended else "",
            call.frames_received,
            call.protocol_errors,
            f", {line.reattaches} re-attach(es)" if line.reattaches else "",
        )


async def _rejoin(
    flow: Flow,
    call: Call,
    transport: Transport,
    config: RuntimeConfig,
    answered: str,
    metrics: FlowMetrics,
) -> None:
    """A new stream for ``call``, live here: once its ``start`` checks out, re-attach the
    call to it; return when the call lets go of it (closed by then)."""
    try:
        start = await wait_for_start(transport, config, flow, answered, metrics, call.call_id)
    except Refused as refused:
        log.error("%s; closing the stream", refused)
        await transport.aclose(refused.code, refused.reason)
        return
    except TransportClosed:
        log.info("%s reconnected stream closed before start", answered)
        return
    finally:
        _warnings.flush(answered)
    try:
        call._rebind(start.stream_id)
        attachment = await call._line.attach(transport)
    except CallEnded:
        log.warning("%s a stream for a call that has ended; refused with 1008", answered)
        await transport.aclose(1008, "call has ended")
        return
    metrics.reattaches.inc()
    await attachment.done.wait()


DRAINED_REASON = "drained"
"""``CallEnded.reason`` of a call that a server's drain deadline ended."""


def _outcome(call: Call, *, flow_raised: bool, cancelled: bool) -> str:
    """The ``outcome`` label of ``callflow_calls_total`` for a call that ran its flow."""
    if flow_raised:
        return "flow_error"
    if cancelled or (call._ended is not None and call._ended.reason == DRAINED_REASON):
        return "drained"
    if call.ended_by_plivo:
        return "hung_up"
    return "completed"


async def _run_flow(flow: Flow, call: Call, metrics: FlowMetrics) -> bool:
    """Run the flow; log its outcome once; True when it raised (other than
    :class:`CallEnded`). Only cancellation escapes."""
    try:
        await flow.handler(call)
    except Exception as exc:
        if _only_call_ended(exc):
            log.info("call=%s flow %s stopped: the call ended", call.call_id, flow.name)
        else:
            log.exception("call=%s flow %s raised; ending this call", call.call_id, flow.name)
            metrics.flow_exception(exc)
            call._end(f"flow raised {type(exc).__name__}")
            return True
    return False


def _only_call_ended(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_call_ended(e) for e in exc.exceptions)
    return isinstance(exc, CallEnded)


async def _drain(call: Call, config: RuntimeConfig) -> None:
    """Give audio the flow queued but did not wait for a chance to play before hanging up
    (on a detached call, once it re-attaches)."""
    if call.queued_s <= 0:
        return
    with contextlib.suppress(CallEnded):
        await call._line.wait_attached()
    with trio.move_on_after(call.queued_s + config.drain_timeout_s):
        with contextlib.suppress(CallEnded):
            await call.checkpoint()


async def _read(
    call: Call,
    flow_done: Signal,
    call_scope: trio.CancelScope,
    config: RuntimeConfig,
    metrics: FlowMetrics,
) -> None:
    """The call's one reader: each message is parsed and dispatched inline by
    :func:`~callflow.runtime._dispatch.dispatcher`'s function, where the transport reads it (no
    task or channel hop per message; on the server, no task switch at all unless the call must
    act). This task wakes only to send a barge-in's ``clearAudio``, when the call moves to
    another socket, and at the end of the stream. A lost socket detaches the call and the reader
    waits for the re-attach (``Line.wait_attached``); any other close ends the call, and the
    flow gets its grace period."""
    line = call._line
    dispatch, stopped = dispatcher(call, metrics)
    try:
        while not stopped():
            transport = await line.wait_attached()
            with line.reading(transport):
                try:
                    await receive_until(transport, dispatch)
                except TransportClosed as exc:
                    line.lost(transport, exc, f"stream closed by Plivo (code {exc.code})")
                    continue
            await call._barge_in_clear()  # a barge-in the dispatch could not finish, if any
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
    if not flow_done.is_set():
        with trio.move_on_after(config.hangup_grace_s):
            await flow_done.wait()
    call_scope.cancel()
