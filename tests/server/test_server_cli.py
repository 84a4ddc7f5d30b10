"""The ``callflow`` command: ``routes``, ``xml`` in-process; ``serve`` as a real subprocess."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from lxml import etree

from callflow.cli import main
from callflow.cli._serve import GC_MIDDLE_THRESHOLD, GC_YOUNG_THRESHOLD, tune_collector

ROOT = Path(__file__).resolve().parents[2]

FLOWS = """
from callflow import Call, Format, flow


@flow("/support", format=Format.MULAW_8K)
async def support(call: Call) -> None:
    await call.hangup()


@flow(
    "/wide",
    format=Format.L16_16K,
    extra_headers={"team": "blue"},
    noise_cancellation=True,
    noise_cancellation_level=70,
    status_callback_method="GET",
)
async def wide(call: Call) -> None:
    await call.hangup()
"""


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "support.py").write_text(FLOWS)
    return folder


def test_routes_json(flows_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", str(flows_dir), "--json"]) == 0
    routes = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in routes] == ["/support", "/wide"]
    wide = routes[1]
    assert wide["stream_path"] == "/wide/stream"
    assert wide["status_path"] == "/wide/status"
    assert wide["flow"].endswith("support.wide")
    assert wide["stream"] == {
        "format": "audio/x-l16;rate=16000",
        "bidirectional": True,
        "audio_track": "inbound",
        "stream_timeout": 86400,
        "status_callback_url": None,
        "status_callback_method": "GET",
        "extra_headers": {"team": "blue"},
        "keep_call_alive": True,
        "noise_cancellation": True,
        "noise_cancellation_level": 70,
    }


def test_routes_text(flows_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", str(flows_dir)]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][:4] == ["POST|GET", "/support", "answer", "webhook"]
    assert ["WS", "/support/stream", "stream", "WebSocket"] in lines
    assert ["POST|GET", "/wide/status", "status", "callback"] in lines
    assert ["POST|GET", "/support/machine", "machine", "detection", "callback"] in lines
    assert lines[-3:] == [
        ["GET", "/readyz", "readiness", "(503", "while", "draining)"],
        ["GET", "/livez", "liveness"],
        ["GET", "/healthz", "health", "check", "(alias", "of", "/readyz)"],
    ]


def test_a_module_that_raises_gives_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom at import')\n")
    assert main(["routes", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("callflow: error: ")
    assert "broken.py" in err
    assert "RuntimeError: boom at import" in err
    assert "Traceback" not in err


def test_xml(flows_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xml", str(flows_dir), "/wide", "--public-url", "https://abc.ngrok.app"]) == 0
    root = etree.fromstring(capsys.readouterr().out.encode())
    stream = root.find("Stream")
    assert stream is not None
    assert stream.get("contentType") == "audio/x-l16;rate=16000"
    assert stream.get("statusCallbackUrl") == "https://abc.ngrok.app/wide/status"
    assert (stream.text or "").startswith("wss://abc.ngrok.app/wide/stream?t=")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["xml", "{flows}", "/nope"], "no flow at '/nope'"),
        (["xml", "{flows}", "/wide", "--public-url", "ftp://x"], "--public-url"),
        (["serve", "{flows}", "--public-url", "https://x.test/path"], "--public-url"),
        (["routes", "{flows}/missing"], "not a folder"),
    ],
)
def test_bad_input_exits_2(
    flows_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([a.format(flows=flows_dir) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("PLIVO_AUTH_TOKEN", None)
    return env


@pytest.mark.e2e
async def test_serve_subprocess_health_and_sigint(flows_dir: Path) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "callflow", "serve", str(flows_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        out = b""
        with trio.fail_after(20):
            while b"listening on " not in out or not out.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, f"serve exited early: {out!r}"
                out += chunk
        text = out.decode()
        url = text.split("listening on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert f"answer URL for Plivo: {url}/support" in text
        async with httpx.AsyncClient(base_url=url) as client:
            health = (await client.get("/healthz")).json()
        assert health == {
            "status": "ok",
            "ready": True,
            "calls": 0,
            "flows": ["/support", "/wide"],
            "worker": 0,
            "pid": process.pid,
        }
        process.send_signal(signal.SIGINT)
        with trio.fail_after(5):
            status = await process.wait()
        err = b""
        while chunk := await process.stderr.receive_some():
            err += chunk
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()
    assert status == 0, err.decode()
    lines = err.decode().splitlines()
    assert any(" WARNING callflow.server PLIVO_AUTH_TOKEN is not set" in line for line in lines)
    assert any("SIGINT: draining" in line for line in lines)
    assert "Traceback" not in err.decode()


@pytest.mark.e2e
async def test_serve_on_a_busy_port_exits_1(flows_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await trio.run_process(
            [sys.executable, "-m", "callflow", "serve", str(flows_dir), "--port", str(port)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=_env(),
        )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert f"callflow: error: cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_version_names_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"callflow {version('callflow-plivo')}"


@pytest.mark.parametrize("port", ["65536", "99999", "-1", "80a"])
def test_serve_refuses_a_port_outside_0_to_65535(
    flows_dir: Path, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(flows_dir), "--port", port])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--port" in err
    assert port in err


def test_serve_sets_the_collector_for_a_server_process() -> None:
    """What imports made leaves the collector's reach; young collections wait for
    GC_YOUNG_THRESHOLD allocations and generation 1 for GC_MIDDLE_THRESHOLD of them; the full
    collection keeps CPython's threshold."""
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, before[2])
        assert before[:2] != (GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD)  # it changed something
        assert gc.get_freeze_count() > 1000  # the modules imported so far, at least
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
