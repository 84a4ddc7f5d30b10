"""Replay protection: a signed webhook is accepted once (Signature V3 nonce; PROTOCOL.md §7)."""

from __future__ import annotations

import contextvars
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from serverkit import AUTH_TOKEN, StartServer, fresh_nonce

from callflow import Format, flow
from callflow.observe import METRICS
from callflow.runtime import LiveCalls
from callflow.server import ServerInfo, signature_v3
from callflow.server._http import HttpError, Request
from callflow.server._replay import NonceCache, Seen
from callflow.server._webhooks import Webhooks

ANSWER = {"CallUUID": "call-r", "From": "111", "To": "222", "Direction": "inbound"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_nonce_is_new_once_within_the_window() -> None:
    clock = Clock()
    cache = NonceCache(window=600, clock=clock)
    assert cache.check_and_add("n1") is Seen.NEW
    assert cache.check_and_add("n1") is Seen.REPLAY
    assert cache.check_and_add("n2") is Seen.NEW
    clock.now += 599
    assert cache.check_and_add("n1") is Seen.REPLAY
    clock.now += 2
    assert cache.check_and_add("n1") is Seen.NEW


def test_a_full_table_refuses_instead_of_forgetting_a_fresh_nonce() -> None:
    clock = Clock()
    cache = NonceCache(window=600, capacity=4, clock=clock)
    assert [cache.check_and_add(f"n{i}") for i in range(4)] == [Seen.NEW] * 4
    assert cache.check_and_add("n4") is Seen.FULL
    assert [cache.check_and_add(f"n{i}") for i in range(4)] == [Seen.REPLAY] * 4
    clock.now += 601  # the window is over: room again
    assert cache.check_and_add("n4") is Seen.NEW


_OTHER_WORKER = """
import sys
from callflow.server._replay import NonceCache
cache = NonceCache(path=sys.argv[1])
print(cache.check_and_add(sys.argv[2]).value)
cache.close()
"""


def test_workers_share_one_table_through_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nonces")
    here = NonceCache(path=path)
    try:
        assert here.check_and_add("seen-here") is Seen.NEW

        def other(nonce: str) -> str:
            run = subprocess.run(
                [sys.executable, "-c", _OTHER_WORKER, path, nonce],
                capture_output=True,
                text=True,
                check=True,
            )
            return run.stdout.strip()

        assert other("seen-here") == "replay"
        assert other("seen-there") == "new"
        assert here.check_and_add("seen-there") is Seen.REPLAY
    finally:
        here.close()


def signed(url: str, params: Mapping[str, str], nonce: str) -> dict[str, str]:
    signature = signature_v3(AUTH_TOKEN, method="POST", url=url, params=params, nonce=nonce)
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}


@flow("/replayed", format=Format.MULAW_8K)
async def replayed(call: object) -> None:
    pass


def replays_refused(kind: str) -> float:
    value = METRICS.registry.get_sample_value(
        "callflow_webhook_replays_refused_total", {"kind": kind}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/replayed", "answer"), ("/replayed/status", "status"), ("/replayed/machine", "machine")],
)
async def test_a_replayed_webhook_gets_403(start_server: StartServer, path: str, kind: str) -> None:
    info: ServerInfo = await start_server(flows=[replayed], auth_token=AUTH_TOKEN)
    headers = signed(info.url + path, ANSWER, fresh_nonce())
    before = replays_refused(kind)
    async with httpx.AsyncClient(base_url=info.url) as client:
        first = await client.post(path, data=ANSWER, headers=headers)
        again = await client.post(path, data=ANSWER, headers=headers)
        other = await client.post(path, data=ANSWER, headers=signed(info.url + path, ANSWER, "1"))
    assert first.status_code == 200
    assert again.status_code == 403
    assert "nonce already used" in again.text
    assert other.status_code == 200  # a new nonce, properly signed
    assert replays_refused(kind) == before + 1


async def test_a_forged_request_does_not_use_up_its_nonce(start_server: StartServer) -> None:
    info: ServerInfo = await start_server(flows=[replayed], auth_token=AUTH_TOKEN)
    nonce = fresh_nonce()
    forged = {**signed(info.url + "/replayed", ANSWER, nonce), "X-Plivo-Signature-V3": "AAAA"}
    async with httpx.AsyncClient(base_url=info.url) as client:
        refused = await client.post("/replayed", data=ANSWER, headers=forged)
        real = await client.post(
            "/replayed", data=ANSWER, headers=signed(info.url + "/replayed", ANSWER, nonce)
        )
    assert refused.status_code == 403
    assert real.status_code == 200


class FakeCall:
    """Stands for a live call (the webhooks keep its nonces weakly, by identity)."""


class OneLiveCall(LiveCalls):
    """Claims one call, ``call-r``, is live (the same object for as long as it lives)."""

    def __init__(self) -> None:
        super().__init__()
        self.call: FakeCall | None = FakeCall()
        self.delivered = 0

    def get(self, call_uuid: str) -> FakeCall | None:  # type: ignore[override]
        return self.call if call_uuid == "call-r" else None

    def deliver_status(self, call_uuid: str, params: Mapping[str, str]) -> bool:
        self.delivered += self.call is not None and call_uuid == "call-r"
        return self.call is not None


def status_request(nonce: str) -> Request:
    url = "http://h.example/replayed/status"
    body = "&".join(f"{k}={v}" for k, v in ANSWER.items()).encode()
    headers = {k.lower(): v for k, v in signed(url, ANSWER, nonce).items()}
    headers |= {"host": "h.example", "content-type": "application/x-www-form-urlencoded"}
    return Request(
        method="POST",
        target="/replayed/status",
        path="/replayed/status",
        query="",
        headers=headers,
        body=body,
        client="127.0.0.1:1",
    )


def test_a_callback_replayed_after_the_window_never_reaches_its_call() -> None:
    # In a context of its own, as each connection's task has: the handler binds the call
    # for its log lines.
    contextvars.copy_context().run(callback_replayed_after_the_window)


def callback_replayed_after_the_window() -> None:
    clock = Clock()
    live = OneLiveCall()
    webhooks = Webhooks(
        public_url=None,
        auth_token=AUTH_TOKEN,
        token_ttl=300,
        live_calls=live,
        nonces=NonceCache(window=600, clock=clock),
    )
    request = status_request(fresh_nonce())
    assert webhooks.status(request, replayed)[0] == 200
    assert live.delivered == 1
    clock.now += 3600  # long after the window, the call still live: still refused
    with pytest.raises(HttpError) as refused:
        webhooks.status(request, replayed)
    assert refused.value.status == 403
    live.call = None  # the call ended: the replay is accepted but reaches no flow
    clock.now += 3600
    assert webhooks.status(request, replayed)[0] == 200
    assert live.delivered == 1
