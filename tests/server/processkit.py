"""Helpers for tests that run the real ``callflow serve`` as a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

ROOT = Path(__file__).resolve().parents[2]

DRAIN_FLOWS = textwrap.dedent(
    '''
    """Flows for the drain tests: one that ends when the caller presses #, one that sleeps
    in a shielded scope, one that floods the socket with sendDTMF."""
    import logging

    import trio

    from callflow import Call, CallEnded, Format, flow

    log = logging.getLogger("drainflows")


    @flow("/wait", format=Format.MULAW_8K)
    async def wait(call: Call) -> None:
        await call.send_dtmf("1")
        try:
            while await call.wait_dtmf() != "#":
                pass
        except CallEnded as exc:
            log.info("flow /wait %s saw CallEnded reason=%s", call.call_id, exc.reason)
            raise
        finally:
            log.info("flow /wait %s finally ran", call.call_id)


    @flow("/stuck", format=Format.MULAW_8K)
    async def stuck(call: Call) -> None:
        await call.send_dtmf("1")
        with trio.CancelScope(shield=True):
            await trio.sleep(3600)


    @flow("/flood", format=Format.MULAW_8K)
    async def flood(call: Call) -> None:
        while True:
            await call.send_dtmf("1234567890")
    '''
)


WORKER_FLOWS = textwrap.dedent(
    '''
    """A flow that names the worker running it: every DTMF it sends is its worker index.
    ``*`` waits for a StopStream status callback, ``A`` for machine detection; ``#`` ends."""
    import os

    from callflow import Call, Format, flow


    @flow("/w", format=Format.MULAW_8K)
    async def w(call: Call) -> None:
        me = os.environ.get("CALLFLOW_WORKER", "0/1/-").split("/")[0]
        await call.send_dtmf(me)
        while (digit := await call.wait_dtmf()) != "#":
            if digit == "*":
                await call.wait_status("StopStream")
            elif digit == "A":
                await call.wait_machine()
            await call.send_dtmf(me)
    '''
)


def write_worker_flows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "workerflows.py").write_text(WORKER_FLOWS)
    return folder


def write_drain_flows(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drainflows.py").write_text(DRAIN_FLOWS)
    return folder


def serve_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("PLIVO_AUTH_TOKEN", None)
    env.pop("PLIVO_AUTH_ID", None)
    return env


class Served:
    """A running ``callflow serve``: its process, URL and what it wrote so far."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.url = ""
        self.out = b""
        self.err = b""
        self.exited = trio.Event()
        self.wrote = trio.Event()

    @property
    def log(self) -> str:
        return self.err.decode(errors="replace")

    async def wait_log(self, text: str) -> None:
        """Wait until the log (stderr) holds ``text``; wrap it in ``trio.fail_after``."""
        while text not in self.log:
            await self.wrote.wait()

    async def wait_exit(self) -> int:
        """The exit status, once the process has ended; wrap it in ``trio.fail_after``."""
        await self.exited.wait()
        assert self.process.returncode is not None
        return self.process.returncode


@asynccontextmanager
async def serve(folder: Path, *args: str) -> AsyncIterator[Served]:
    """``callflow serve FOLDER --port 0 ARGS…`` until the block ends (then killed if alive)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "callflow", "serve", str(folder), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=serve_env(),
    )
    served = Served(process)
    assert process.stdout is not None
    assert process.stderr is not None

    async def pump_out() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.receive_some():
            served.out += chunk

    async def pump_err() -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.receive_some():
            served.err += chunk
            served.wrote.set()
            served.wrote = trio.Event()

    async def reap() -> None:
        await process.wait()
        served.exited.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_out)
            nursery.start_soon(pump_err)
            nursery.start_soon(reap)
            with trio.fail_after(20):
                while b"listening on " not in served.out or not served.out.endswith(b"\n"):
                    assert not served.exited.is_set(), f"serve exited: {served.log}"
                    await trio.sleep(0.02)
            served.url = served.out.decode().split("listening on ", 1)[1].split()[0]
            try:
                yield served
            finally:
                if process.returncode is None:
                    process.kill()
                with trio.move_on_after(5):
                    await served.exited.wait()
                nursery.cancel_scope.cancel()
    finally:
        await process.stdout.aclose()
        await process.stderr.aclose()


class DeafPeer:
    """A WebSocket client on a blocking socket that completes the handshake, then only
    sends: it never reads again (a peer that keeps sending but never reads)."""

    def __init__(self, url: str) -> None:
        uri = parse_uri(url)
        self.proto = ClientProtocol(uri)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect((uri.host, uri.port))
        self.proto.send_request(self.proto.connect())
        self._flush()
        while self.proto.handshake_exc is None and not self._opened():
            data = self.sock.recv(65536)
            assert data, "closed during the handshake"
            self.proto.receive_data(data)
        assert self.proto.handshake_exc is None, self.proto.handshake_exc

    def _opened(self) -> bool:
        from websockets.protocol import State

        return self.proto.state is State.OPEN

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def send_text(self, text: str) -> bool:
        """Send one text message; False once the server has gone (reset or closed)."""
        self.proto.send_text(text.encode())
        try:
            self._flush()
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()
