"""``PlivoRest`` (PROTOCOL.md §8) against a local HTTP server that records every request:
credentials from the environment, hangup, outbound calls with machine detection, refusals,
and a hung API bounding the REST hangup at the end of a call. Real sockets, real clock."""

from __future__ import annotations

import base64
import logging

import pytest
import trio
from dslkit import make_flow, tone
from restkit import RestRecorder

from callflow import Call, PlivoRest, RestError
from callflow.testing import FakePlivo

CALL = "0c5e1f2a-1111-4222-8333-944455556666"
SHORT = tone(0.2, 440)


def rest_for(api: RestRecorder, timeout_s: float = 10.0) -> PlivoRest:
    return PlivoRest("MAID", "token", api_url=api.api_url, timeout_s=timeout_s)


def test_credentials_come_from_the_environment() -> None:
    assert PlivoRest.from_env({}) is None
    assert PlivoRest.from_env({"PLIVO_AUTH_ID": "MAID"}) is None
    assert PlivoRest.from_env({"PLIVO_AUTH_ID": "MAID", "PLIVO_AUTH_TOKEN": ""}) is None
    rest = PlivoRest.from_env({"PLIVO_AUTH_ID": "MAID", "PLIVO_AUTH_TOKEN": "token"})
    assert rest is not None
    assert rest.auth_id == "MAID"


async def test_the_environment_may_name_the_api_root(plivo_api: RestRecorder) -> None:
    env = {"PLIVO_AUTH_ID": "MAID", "PLIVO_AUTH_TOKEN": "token", "PLIVO_API_URL": plivo_api.api_url}
    rest = PlivoRest.from_env(env)
    assert rest is not None
    with trio.fail_after(5):
        assert await rest.hangup(CALL)
    (request,) = plivo_api.requests
    assert (request.method, request.target) == ("DELETE", f"/v1/Account/MAID/Call/{CALL}/")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"MAID:token").decode()


@pytest.mark.parametrize(("status", "hung_up"), [(204, True), (200, True), (404, False)])
async def test_hangup_answers(plivo_api: RestRecorder, status: int, hung_up: bool) -> None:
    plivo_api.status["DELETE"] = status
    with trio.fail_after(5):
        assert await rest_for(plivo_api).hangup(CALL) is hung_up


async def test_a_refused_hangup_raises_with_the_status(plivo_api: RestRecorder) -> None:
    plivo_api.status["DELETE"] = 401
    with trio.fail_after(5), pytest.raises(RestError, match="HTTP 401") as info:
        await rest_for(plivo_api).hangup(CALL)
    assert info.value.status_code == 401


async def test_no_server_is_a_rest_error_without_a_status() -> None:
    async def refuse(stream: trio.SocketStream) -> None:
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, refuse, 0)
        port = listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()
    await trio.sleep(0.05)  # the listener is closed: nothing answers on that port now
    rest = PlivoRest("MAID", "token", api_url=f"http://127.0.0.1:{port}/v1", timeout_s=2)
    with trio.fail_after(5), pytest.raises(RestError) as info:
        await rest.hangup(CALL)
    assert info.value.status_code == 0


async def test_an_outbound_call_with_machine_detection(plivo_api: RestRecorder) -> None:
    plivo_api.status["POST"] = 201
    plivo_api.body["POST"] = {"api_id": "x", "message": "call fired", "request_uuid": "RQ-1"}
    with trio.fail_after(5):
        uuid = await rest_for(plivo_api).make_call(
            "+15550100",
            "+15550199",
            "https://example.com/bank",
            machine_detection_url="https://example.com/bank/machine",
            extra={"time_limit": "600"},
        )
    assert uuid == "RQ-1"
    (request,) = plivo_api.requests
    assert (request.method, request.target) == ("POST", "/v1/Account/MAID/Call/")
    assert request.json() == {
        "from": "+15550100",
        "to": "+15550199",
        "answer_url": "https://example.com/bank",
        "answer_method": "POST",
        "machine_detection": "true",
        "machine_detection_url": "https://example.com/bank/machine",
        "time_limit": "600",
    }


async def test_an_outbound_call_without_machine_detection(plivo_api: RestRecorder) -> None:
    plivo_api.status["POST"] = 201
    plivo_api.body["POST"] = {"request_uuid": ["RQ-2"]}  # some answers hold a list
    with trio.fail_after(5):
        uuid = await rest_for(plivo_api).make_call("+1", "+2", "https://example.com/a")
    assert uuid == "RQ-2"
    body = plivo_api.requests[0].json()
    assert isinstance(body, dict)
    assert "machine_detection" not in body
    assert "machine_detection_url" not in body


async def test_a_refused_outbound_call_raises(plivo_api: RestRecorder) -> None:
    plivo_api.status["POST"] = 400
    with trio.fail_after(5), pytest.raises(RestError, match="HTTP 400") as info:
        await rest_for(plivo_api).make_call("+1", "+2", "https://example.com/a")
    assert info.value.status_code == 400


async def test_a_hung_api_bounds_the_hangup_and_is_logged(
    plivo_api: RestRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Plivo's API answers a byte at a time and never finishes (no per-read timeout fires):
    the REST hangup at the end of the call gives up after the client's ``timeout_s``, logs
    it, and the stream is closed all the same."""
    plivo_api.stalled = True

    async def returns(call: Call) -> None:
        await call.say(SHORT)

    began = trio.current_time()
    with trio.fail_after(5):
        async with FakePlivo(
            make_flow(returns), call_id=CALL, rest=rest_for(plivo_api, timeout_s=0.5)
        ) as caller:
            assert await caller.hung_up() == 1000
    assert trio.current_time() - began < 2.0
    assert plivo_api.calls("DELETE") == [f"/v1/Account/MAID/Call/{CALL}/"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"call={CALL}" in errors[0]
    assert "REST hangup" in errors[0]
