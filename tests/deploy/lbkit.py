"""The load-balancer test rig: three ``callflow serve`` processes on 127.0.0.1 and Debian's
HAProxy in front of them, running ``deploy/haproxy.cfg`` itself (only its DNS server template
replaced by three fixed ``server`` lines for the three processes)."""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from callflow.protocol import Dtmf, ExtraHeaders, Format, PlayedStream, Start, encode_event
from callflow.server import signature_v3
from callflow.testing import stream_of

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CFG = REPO / "deploy" / "haproxy.cfg"
LBFLOWS = Path(__file__).resolve().parent / "lbflows"
AUTH_TOKEN = "LB_AUTH_TOKEN_0123456789abcdef"
DRAIN_TIMEOUT_S = 20.0

_TEMPLATE = re.compile(r"^\s*server-template\s+\S+\s+\S+\s+\S+.*$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


class Host:
    """One ``callflow serve`` process (JSON logs to a file, port 0)."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.stdout_path = folder / f"{name}.out"
        self.log_path = folder / f"{name}.log"
        env = {**os.environ, "PLIVO_AUTH_TOKEN": AUTH_TOKEN, "PYTHONUNBUFFERED": "1"}
        env.pop("PLIVO_AUTH_ID", None)
        with self.stdout_path.open("wb") as out, self.log_path.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "callflow",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--log-format",
                    "json",
                    "--drain-timeout",
                    str(DRAIN_TIMEOUT_S),
                    str(LBFLOWS),
                ],
                stdout=out,
                stderr=err,
                env=env,
                cwd=REPO,
            )
        _wait_for(self._listening, f"{name} listening")

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.process.returncode}: {self.log_tail()}")
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.stdout_path.read_text())
        if match:
            self.port = int(match.group(1))
            self.url = f"http://127.0.0.1:{self.port}"
        return match is not None

    def log_entries(self) -> list[dict[str, object]]:
        """Every JSON log line so far (each line must be one JSON object)."""
        text = self.log_path.read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def call_ids(self) -> set[str]:
        return {str(e["call_id"]) for e in self.log_entries() if e.get("call_id")}

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


class HAProxy:
    """Debian's ``haproxy`` running the shipped config in front of ``hosts``."""

    def __init__(self, binary: str, hosts: list[Host], folder: Path) -> None:
        shipped = SHIPPED_CFG.read_text()
        assert len(_TEMPLATE.findall(shipped)) == 1, "deploy/haproxy.cfg has one server-template"
        template = _TEMPLATE.search(shipped)
        assert template is not None
        prefix = template.group(0).split()[1]
        servers = "\n".join(
            f"    server {prefix}{i} 127.0.0.1:{h.port}" for i, h in enumerate(hosts, 1)
        )
        self.names = {f"{prefix}{i}": h for i, h in enumerate(hosts, 1)}
        self.config_path = folder / "haproxy.cfg"
        self.config_path.write_text(_TEMPLATE.sub(servers, shipped))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats_path = folder / "haproxy.sock"
        self.log_path = folder / "haproxy.log"
        env = {
            **os.environ,
            "CALLFLOW_LB_BIND": f"127.0.0.1:{self.port}",
            "CALLFLOW_LB_STATS": str(self.stats_path),
            "CALLFLOW_LB_MAXCONN": "2000",  # within this machine's descriptor limit
        }
        checked = subprocess.run(
            [binary, "-c", "-f", str(self.config_path)], env=env, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        _wait_for(lambda: set(self.server_states().values()) == {"UP"}, "HAProxy: every host UP")

    def server_states(self) -> dict[str, str]:
        """``{server name: status}`` from the stats socket (UP, NOLB, DOWN, MAINT…)."""
        if self.process.poll() is not None:
            raise RuntimeError(f"haproxy exited: {self.log_path.read_text()[-2000:]}")
        if not self.stats_path.exists():
            return {}
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            try:
                s.connect(str(self.stats_path))
            except (ConnectionRefusedError, FileNotFoundError):
                return {}
            s.sendall(b"show stat\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        text = b"".join(chunks).decode().lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row["status"].split()[0]
            for row in rows
            if row["pxname"] == "callflow" and row["svname"] in self.names
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def answer(answer_url: str, call_id: str) -> str:
    """POST ``answer_url`` as Plivo does (signed); the ``<Stream>`` URL of the answer."""
    form = {
        "CallUUID": call_id,
        "From": "15550000001",
        "To": "15550000002",
        "Direction": "inbound",
        "CallStatus": "in-progress",
    }
    nonce = secrets.token_hex(10)
    signature = signature_v3(
        AUTH_TOKEN,
        method="POST",
        url=answer_url,
        params={k: [v] for k, v in form.items()},
        nonce=nonce,
    )
    response = httpx.post(
        answer_url,
        data=form,
        headers={"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    url, fmt = stream_of(response.content)
    assert fmt is Format.MULAW_8K
    return url


class RawStream:
    """Plivo's side of one stream connection, driven by hand (blocking): send ``start``, keys
    and checkpoint acks, read commands, and drop the link with a TCP reset (no close frame),
    as a network failure does."""

    def __init__(self, url: str, call_id: str) -> None:
        self.call_id = call_id
        self.stream_id = str(uuid.uuid4())
        self._seq = itertools.count(1)
        self._connection = ws_connect(url, open_timeout=10, max_size=2**20)
        self.ws = self._connection.__enter__()
        self._send(
            Start(
                sequence_number=next(self._seq),
                call_id=call_id,
                stream_id=self.stream_id,
                account_id="MA_TEST",
                tracks=("inbound",),
                encoding=Format.MULAW_8K.encoding,
                sample_rate=Format.MULAW_8K.sample_rate,
                extra_headers=ExtraHeaders.parse(""),
            )
        )

    def _send(self, event: object) -> None:
        self.ws.send(encode_event(event))  # type: ignore[arg-type]

    def press(self, digit: str) -> None:
        self._send(
            Dtmf(
                sequence_number=next(self._seq),
                stream_id=self.stream_id,
                digit=digit,
                track="inbound",
                timestamp_ms=int(time.time() * 1000),
                extra_headers=ExtraHeaders.parse(""),
            )
        )

    def ack(self, name: str) -> None:
        self._send(
            PlayedStream(sequence_number=next(self._seq), stream_id=self.stream_id, name=name)
        )

    def next_command(self, timeout: float = 15.0) -> dict[str, object] | None:
        """The next message from callflow as JSON, or None when it closed the stream."""
        try:
            text = self.ws.recv(timeout=timeout)
        except ConnectionClosed:
            return None
        message: dict[str, object] = json.loads(text)
        return message

    def reset(self) -> None:
        """Drop the TCP connection with a reset: no close frame, no FIN."""
        sock = self.ws.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    def __enter__(self) -> RawStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close (a no-op after :meth:`reset` or callflow's close)."""
        self._connection.__exit__(None, None, None)


def audio_bytes(message: dict[str, object]) -> bytes:
    """The 8 kHz μ-law audio of a ``playAudio`` command."""
    media = message["media"]
    assert isinstance(media, dict)
    return base64.b64decode(media["payload"])
