"""Webhooks into the live flow: machine detection wakes ``wait_machine()``, status callbacks
reach ``wait_status()``. Virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from dslkit import GOODBYE, LONG, make_flow, tone

from callflow import Call, CallEnded, MachineDetection, StatusEvent
from callflow.protocol import ClearAudio
from callflow.testing import FakePlivo

VOICEMAIL = tone(1.0, 880)
CALL = "machine-call"


async def test_machine_detection_switches_the_flow_to_voicemail(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[object] = []

    async def body(call: Call) -> None:
        async with trio.open_nursery() as nursery:

            async def greet() -> None:
                await call.say(LONG)

            nursery.start_soon(greet)
            detection = await call.wait_machine()
            got.append((detection, trio.current_time()))
            nursery.cancel_scope.cancel()  # stop the greeting (cleared), leave a message
        await call.say(VOICEMAIL)

    async with FakePlivo(make_flow(body), call_id=CALL) as caller:
        await trio.sleep(2.0)
        # delivered (the call is live here), but a human answered: nothing to wake
        assert caller.live_calls.deliver_machine(CALL, {"Machine": "false", "CallUUID": CALL})
        await trio.sleep(1.0)
        assert not got  # "false" wakes nobody
        params = {"Machine": "true", "CallUUID": CALL, "To": "+15550100"}
        assert caller.live_calls.deliver_machine(CALL, params)
        clear = await caller.wait_for(ClearAudio)
        assert clear.time == pytest.approx(3.0)
        caller.skip_heard()
        await caller.hears(VOICEMAIL)
        await caller.hung_up()
    detection, at = got[0]
    assert detection == MachineDetection(True, params)
    assert at == pytest.approx(3.0)
    # the call is over: nothing is live any more
    assert not caller.live_calls.deliver_machine(CALL, params)
    assert len(caller.live_calls) == 0


async def test_a_detection_before_the_flow_waits_is_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[MachineDetection] = []

    async def body(call: Call) -> None:
        await trio.sleep(2.0)
        got.append(await call.wait_machine())

    async with FakePlivo(make_flow(body), call_id=CALL) as caller:
        await trio.sleep(0.5)
        assert caller.live_calls.deliver_machine(CALL, {"Machine": "TRUE", "CallUUID": CALL})
        await caller.hung_up()
    assert got[0].machine


async def test_wait_machine_raises_call_ended_on_hangup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[str] = []

    async def body(call: Call) -> None:
        with pytest.raises(CallEnded):
            await call.wait_machine()
        got.append("ended")

    async with FakePlivo(make_flow(body), call_id=CALL) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert got == ["ended"]


async def test_status_callbacks_reach_the_flow(autojump_clock: trio.testing.MockClock) -> None:
    got: list[tuple[StatusEvent, float]] = []

    async def body(call: Call) -> None:
        got.append((await call.wait_status("DegradedStream"), trio.current_time()))
        got.append((await call.wait_status(), trio.current_time()))
        await call.say(GOODBYE)

    async with FakePlivo(make_flow(body), call_id=CALL) as caller:
        live = caller.live_calls
        await trio.sleep(1.0)
        assert live.deliver_status(CALL, {"Event": "StartStream", "CallUUID": CALL})
        await trio.sleep(1.0)
        assert live.deliver_status(CALL, {"Event": "DegradedStream", "StatusReason": "30"})
        assert not live.deliver_status("another-call", {"Event": "StopStream"})
        await caller.hears(GOODBYE)
        await caller.hung_up()
    (degraded, at), (earlier, then) = got
    assert degraded.event == "DegradedStream"
    assert degraded.params["StatusReason"] == "30"
    assert at == pytest.approx(2.0)
    # the StartStream that came before anyone waited was kept, in order
    assert earlier == StatusEvent("StartStream", {"Event": "StartStream", "CallUUID": CALL})
    assert then == pytest.approx(2.0)
