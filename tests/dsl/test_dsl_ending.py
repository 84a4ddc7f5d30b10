"""Every way a call ends: the flow returns, raises, is cancelled (by itself or as a whole),
hangs up, transfers, or the caller hangs up first. With credentials, the REST hangup is seen
by a local HTTP server (real sockets, so these run on the real clock with short prompts);
without, the stream is closed."""

from __future__ import annotations

import base64
import logging

import pytest
import trio
import trio.testing
from dslkit import make_flow, tone
from restkit import RestRecorder

from callflow import Call, CallEnded, Format, PlivoRest, RestError, RuntimeConfig
from callflow.protocol import ClearAudio
from callflow.runtime import MemoryTransport, TransportClosed, memory_transport_pair, run_call
from callflow.testing import FakePlivo

SHORT = tone(0.2, 440)
LONGER = tone(3.0, 520)
CALL = "0c5e1f2a-1111-4222-8333-944455556666"
HANGUP = f"/v1/Account/MAID/Call/{CALL}/"


def rest_for(api: RestRecorder) -> PlivoRest:
    return PlivoRest("MAID", "token", api_url=api.api_url)


async def returns(call: Call) -> None:
    await call.say(SHORT)


async def raises(call: Call) -> None:
    await call.say(SHORT)
    raise RuntimeError("the flow broke")


async def cancels_its_prompt(call: Call) -> None:
    with trio.move_on_after(0.3):
        await call.say(LONGER)


async def hangs_up(call: Call) -> None:
    await call.say(SHORT)
    await call.hangup()
    await call.hangup()  # idempotent
    with pytest.raises(CallEnded):
        await call.say(SHORT)


async def returns_mid_prompt(call: Call) -> None:
    await call.play(LONGER)  # queued, not waited for: the call ends once it has played


async def raises_mid_prompt(call: Call) -> None:
    async with trio.open_nursery() as nursery:

        async def breaks() -> None:
            await trio.sleep(0.3)
            raise RuntimeError("the flow broke mid-prompt")

        nursery.start_soon(breaks)
        await call.say(LONGER)  # cancelled by the error beside it


FLOWS = [
    returns,
    raises,
    cancels_its_prompt,
    hangs_up,
    returns_mid_prompt,
    raises_mid_prompt,
]
CUT_MID_PROMPT = (cancels_its_prompt, raises_mid_prompt)
"""Flows that end while a prompt plays: callflow clears it before the call ends."""
RAISING = (raises, raises_mid_prompt)
"""Flows that raise: the stream closes with 1011 (flow error) instead of 1000."""


def close_code_of(body: object) -> int:
    return 1011 if body in RAISING else 1000


# -- with credentials: REST hangup -------------------------------------------------------------


@pytest.mark.parametrize("body", FLOWS, ids=lambda f: f.__name__)
async def test_every_end_the_flow_causes_is_a_rest_hangup(
    plivo_api: RestRecorder, body: object
) -> None:
    with trio.fail_after(10):
        async with FakePlivo(
            make_flow(body),  # type: ignore[arg-type]
            call_id=CALL,
            rest=rest_for(plivo_api),
        ) as caller:
            assert await caller.hung_up() == close_code_of(body)
    assert plivo_api.calls("DELETE") == [HANGUP]  # once, however the flow ended
    assert len(plivo_api.requests) == 1
    auth = plivo_api.requests[0].headers["authorization"]
    assert auth == "Basic " + base64.b64encode(b"MAID:token").decode()
    if body in CUT_MID_PROMPT:
        assert len(caller.cleared) == 1  # the prompt was cleared before the call ended
        assert 0.2 <= caller.heard_s < 1.0  # real clock; exact in the virtual-time test below
    if body is returns_mid_prompt:
        assert not caller.cleared
        assert caller.heard_s == pytest.approx(LONGER.duration_s)  # played out, then ended


async def test_cancelling_the_whole_call_is_a_rest_hangup(plivo_api: RestRecorder) -> None:
    plivo_side, server_side = memory_transport_pair()
    with trio.fail_after(10):
        async with (
            FakePlivo(transport=plivo_side, format=Format.MULAW_8K, call_id=CALL) as caller,
            trio.open_nursery() as nursery,
        ):
            scope = trio.CancelScope()
            ended: list[float] = []

            async def serve() -> None:
                with scope:
                    await run_call(make_flow(returns_late), server_side, rest=rest_for(plivo_api))
                ended.append(trio.current_time())

            nursery.start_soon(serve)
            await trio.sleep(0.3)  # mid-prompt
            cancelled = trio.current_time()
            scope.cancel()
            assert await caller.hung_up() == 1000
    assert plivo_api.calls("DELETE") == [HANGUP]
    assert ended[0] - cancelled < 1.0  # at once, not after clear_timeout_s


async def returns_late(call: Call) -> None:
    await call.say(LONGER)


async def test_no_rest_hangup_when_the_caller_hung_up(plivo_api: RestRecorder) -> None:
    with trio.fail_after(10):
        async with FakePlivo(
            make_flow(returns_late), call_id=CALL, rest=rest_for(plivo_api)
        ) as caller:
            await trio.sleep(0.3)
            await caller.hang_up()
            await caller.hung_up()
    assert plivo_api.requests == []


class PeerGone:
    """A server-side transport whose peer has closed the stream without the reader having
    read the close yet (noticed by a send first): sends fail once ``gone``. (A lost link,
    code 1006, would detach the call for a reconnect instead: tests/runtime/test_reconnect.py.)"""

    def __init__(self, inner: MemoryTransport) -> None:
        self.inner = inner
        self.gone = False

    async def receive(self) -> str:
        return await self.inner.receive()

    async def send(self, message: str) -> None:
        if self.gone:
            raise TransportClosed(1000, "caller hung up")
        await self.inner.send(message)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        await self.inner.aclose(code, reason)


async def test_no_rest_hangup_when_a_send_finds_the_stream_gone(
    plivo_api: RestRecorder,
) -> None:
    plivo_side, server_side = memory_transport_pair()
    transport = PeerGone(server_side)
    seen: list[object] = []

    async def body(call: Call) -> None:
        await trio.sleep(0.2)
        try:
            await call.send_dtmf("1")
        finally:
            seen.append(call.ended_by_plivo)

    with trio.fail_after(10):
        async with (
            FakePlivo(transport=plivo_side, format=Format.MULAW_8K, call_id=CALL) as caller,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(
                lambda: run_call(make_flow(body), transport, rest=rest_for(plivo_api))
            )
            await trio.sleep(0.1)
            transport.gone = True
            await caller.hung_up()
    assert seen == [True]  # the flow did not end this call: the stream went away
    assert plivo_api.requests == []


async def test_a_404_on_hangup_means_already_gone(
    plivo_api: RestRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callflow")
    plivo_api.status["DELETE"] = 404
    with trio.fail_after(10):
        async with FakePlivo(make_flow(returns), call_id=CALL, rest=rest_for(plivo_api)) as caller:
            assert await caller.hung_up() == 1000
    assert plivo_api.calls("DELETE") == [HANGUP]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("already gone" in r.getMessage() for r in caplog.records)


async def test_a_refused_hangup_is_logged_and_the_stream_closed_anyway(
    plivo_api: RestRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    plivo_api.status["DELETE"] = 500
    with trio.fail_after(10):
        async with FakePlivo(make_flow(returns), call_id=CALL, rest=rest_for(plivo_api)) as caller:
            assert await caller.hung_up() == 1000
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"call={CALL}" in errors[0]
    assert "500" in errors[0]


# -- transfer ----------------------------------------------------------------------------------


async def test_transfer_posts_aleg_url_closes_the_stream_and_never_hangs_up(
    plivo_api: RestRecorder,
) -> None:
    after: list[object] = []

    async def body(call: Call) -> None:
        await call.say(SHORT)
        await call.transfer("https://example.com/agent.xml")
        after.append(call.ended)
        with pytest.raises(CallEnded):
            await call.say(SHORT)

    with trio.fail_after(10):
        async with FakePlivo(make_flow(body), call_id=CALL, rest=rest_for(plivo_api)) as caller:
            assert await caller.hung_up() == 1000
    assert after == [True]
    assert plivo_api.calls("POST") == [HANGUP]
    assert plivo_api.calls("DELETE") == []
    assert plivo_api.requests[0].json() == {
        "legs": "aleg",
        "aleg_url": "https://example.com/agent.xml",
        "aleg_method": "POST",
    }


async def test_a_refused_transfer_raises_and_the_call_goes_on(plivo_api: RestRecorder) -> None:
    plivo_api.status["POST"] = 400
    errors: list[RestError] = []

    async def body(call: Call) -> None:
        try:
            await call.transfer("https://example.com/agent.xml")
        except RestError as exc:
            errors.append(exc)
        await call.say(SHORT)

    with trio.fail_after(10):
        async with FakePlivo(make_flow(body), call_id=CALL, rest=rest_for(plivo_api)) as caller:
            await caller.hears(SHORT)
            await caller.hung_up()
    assert [e.status_code for e in errors] == [400]
    assert plivo_api.calls("POST") == [HANGUP]
    assert plivo_api.calls("DELETE") == [HANGUP]  # the flow ended it later, normally


async def test_transfer_needs_credentials(autojump_clock: trio.testing.MockClock) -> None:
    from callflow import CallflowError

    errors: list[BaseException] = []

    async def body(call: Call) -> None:
        with pytest.raises(CallflowError, match="PLIVO_AUTH_ID") as info:
            await call.transfer("https://example.com/agent.xml")
        errors.append(info.value)
        await call.say(SHORT)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hears(SHORT)
        await caller.hung_up()
    assert len(errors) == 1


# -- without credentials: the stream is closed -------------------------------------------------


@pytest.mark.parametrize("body", FLOWS, ids=lambda f: f.__name__)
async def test_without_credentials_every_end_closes_the_stream(
    autojump_clock: trio.testing.MockClock, body: object
) -> None:
    async with FakePlivo(make_flow(body)) as caller:  # type: ignore[arg-type]
        assert await caller.hung_up() == close_code_of(body)
        ended = trio.current_time()
    assert caller.close_code == close_code_of(body)
    assert caller.queued_s == 0
    if body in CUT_MID_PROMPT:
        assert [c.time for c in caller.cleared] == [pytest.approx(0.3)]
        assert caller.heard_s == pytest.approx(0.3, abs=1e-3)
        assert ended == pytest.approx(0.3)  # ended at once, after the clear
    if body is returns_mid_prompt:
        assert not caller.cleared
        assert caller.heard_s == pytest.approx(LONGER.duration_s)
        assert ended == pytest.approx(LONGER.duration_s)


async def test_without_credentials_a_cancelled_call_closes_the_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plivo_side, server_side = memory_transport_pair()
    config = RuntimeConfig()
    async with (
        FakePlivo(transport=plivo_side, format=Format.MULAW_8K) as caller,
        trio.open_nursery() as nursery,
    ):
        scope = trio.CancelScope()

        async def serve() -> None:
            with scope:
                await run_call(make_flow(returns_late), server_side, config=config)

        nursery.start_soon(serve)
        await trio.sleep(1.0)
        scope.cancel()
        assert await caller.hung_up() == 1000
        assert trio.current_time() == pytest.approx(1.0)


async def test_a_flow_cancelled_mid_prompt_clears_it_then_ends_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakePlivo(make_flow(cancels_its_prompt)) as caller:
        clear = await caller.wait_for(ClearAudio)
        assert await caller.hung_up() == 1000
    assert clear.time == pytest.approx(0.3)
    assert caller.heard_s == pytest.approx(0.3, abs=1e-3)
