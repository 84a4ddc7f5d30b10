"""Machine detection through the real server: Plivo POSTs ``Machine=true`` to ``<path>/machine``
(seed ``004_…``) and the running flow's ``wait_machine()`` wakes; signed like every webhook."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest
import trio
from serverkit import (
    AUTH_TOKEN,
    StartServer,
    answer,
    fresh_nonce,
    plivo_socket,
    sent_dtmf,
    start_message,
)

from callflow import Call, Format, flow
from callflow.server import ServerInfo, signature_v3

CALL = {"CallUUID": "call-1", "From": "111", "To": "222", "Direction": "outbound"}


@flow("/outbound", format=Format.MULAW_8K)
async def outbound(call: Call) -> None:
    """Says "0" once it runs, then "1" when Plivo reports an answering machine."""
    await call.send_dtmf("0")
    detection = await call.wait_machine()
    await call.send_dtmf("1" if detection.params.get("Machine") == "true" else "2")


def signed(info: ServerInfo, path: str, params: Mapping[str, str]) -> dict[str, str]:
    nonce = fresh_nonce()  # Plivo signs each request with a new nonce
    signature = signature_v3(
        AUTH_TOKEN, method="POST", url=f"{info.url}{path}", params=params, nonce=nonce
    )
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}


async def test_machine_detection_reaches_the_running_flow(start_server: StartServer) -> None:
    info = await start_server(flows=[outbound])
    url = await answer(info, CALL, path="/outbound")
    async with plivo_socket(url) as ws, httpx.AsyncClient(base_url=info.url) as http:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "0"
        human = {"CallUUID": "call-1", "Machine": "false"}
        assert (await http.post("/outbound/machine", data=human)).status_code == 200
        with trio.move_on_after(0.2):  # a human answered: the flow goes on waiting
            pytest.fail(f"the flow woke for Machine=false: {await ws.get_message()}")
        machine = {"CallUUID": "call-1", "Machine": "true", "To": "222"}
        assert (await http.post("/outbound/machine", data=machine)).status_code == 200
        with trio.fail_after(5):
            assert sent_dtmf(await ws.get_message()) == "1"
        nobody = {"CallUUID": "call-2", "Machine": "true"}  # no such call here: still 200
        assert (await http.post("/outbound/machine", data=nobody)).status_code == 200


async def test_machine_detection_is_signed(start_server: StartServer) -> None:
    info = await start_server(flows=[outbound], auth_token=AUTH_TOKEN)
    url = await answer(info, CALL, path="/outbound", headers=signed(info, "/outbound", CALL))
    machine = {"CallUUID": "call-1", "Machine": "true"}
    async with plivo_socket(url) as ws, httpx.AsyncClient(base_url=info.url) as http:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "0"
        forged = await http.post("/outbound/machine", data=machine)
        assert forged.status_code == 403
        with trio.move_on_after(0.2):  # refused: the flow goes on waiting
            pytest.fail(f"the flow woke for an unsigned callback: {await ws.get_message()}")
        headers = signed(info, "/outbound/machine", machine)
        assert (await http.post("/outbound/machine", data=machine, headers=headers)).is_success
        with trio.fail_after(5):
            assert sent_dtmf(await ws.get_message()) == "1"
