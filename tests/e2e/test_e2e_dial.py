"""``callflow dial`` as a softphone against the real server on 127.0.0.1: prompts named as
they play, keys, and one line ``callflow: error: …`` with a non-zero status for each failure a
user can cause (no server, a bad URL or key, a refused signature, Ctrl-C, a flow that raises)."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from callflow import Call, Format, flow
from callflow.audio import beep, read_wav, write_wav
from callflow.cli import main
from callflow.server import ServerInfo, serve_flows
from callflow.testing._caller import DialError, load_prompts, run_caller

pytestmark = pytest.mark.e2e

HELLO = beep(0.3, freq_hz=440, rate=8000)
LONG = beep(30.0, freq_hz=600, rate=8000)
BYE = beep(0.2, freq_hz=880, rate=8000)


@flow("/short", format=Format.MULAW_8K)
async def short(call: Call) -> None:
    await call.say(HELLO)
    if await call.wait_dtmf() == "1":
        await call.say(BYE)


@flow("/long", format=Format.MULAW_8K)
async def long(call: Call) -> None:
    await call.say(LONG)


@flow("/raises", format=Format.MULAW_8K)
async def raises(call: Call) -> None:
    await call.say(HELLO)
    raise RuntimeError("this flow is broken")


async def _serve(nursery: trio.Nursery, auth_token: str | None = None) -> ServerInfo:
    info: ServerInfo = await nursery.start(
        functools.partial(
            serve_flows,
            [short, long, raises],
            host="127.0.0.1",
            port=0,
            auth_token=auth_token,
            drain_timeout=1.0,
        )
    )
    return info


def _env() -> dict[str, str]:
    drop = ("PLIVO_AUTH_TOKEN", "PLIVO_AUTH_ID")
    return {k: v for k, v in os.environ.items() if k not in drop}


async def _dial_process(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", "callflow", "dial", "--no-speaker", *args],
            capture_stdout=True,
            capture_stderr=True,
            stdin=subprocess.DEVNULL,
            env=_env(),
            check=False,
        )


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("callflow: error: "), stderr
    return lines[0]


def test_bad_keys_and_urls_are_refused_before_calling(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["dial", "http://127.0.0.1:9/x", "--keys", "1,2x"],
        ["dial", "http://127.0.0.1:9/x", "--keys", "1,,2"],
        ["dial", "127.0.0.1:8000/hello"],
        ["dial", "http://127.0.0.1:99999/hello"],
    ):
        assert main(argv) == 2, argv
        line = _one_error_line(capsys.readouterr().err)
        assert "cannot connect" not in line  # nothing was called
    main(["dial", "http://127.0.0.1:9/x", "--keys", "1,2x"])
    assert "'X' is not a DTMF key" in capsys.readouterr().err


def test_no_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["dial", "--no-speaker", f"http://127.0.0.1:{port}/hello"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert f"cannot connect to 127.0.0.1:{port}" in line


async def test_prompts_are_named_as_they_play_and_keys_shown(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await _serve(nursery)
    write_wav(tmp_path / "hello.wav", HELLO)
    write_wav(tmp_path / "bye.wav", BYE)
    lines: list[str] = []
    with trio.fail_after(30):
        result = await run_caller(
            f"{info.url}/short",
            keys=["1"],
            out=tmp_path / "heard.wav",
            say=lines.append,
            prompts=load_prompts(tmp_path),
            verbose=True,
        )
    assert result.ok
    assert result.close_code == 1000
    text = "\n".join(lines)
    assert "■ prompt 'hello': 0.30 s" in text
    assert "→ dtmf 1" in text
    assert "■ prompt 'bye': 0.20 s" in text
    assert text.count("▶ playing") == 2
    assert "← playAudio  0.30 s of audio/x-mulaw" in text  # verbose: every message too
    heard = read_wav(tmp_path / "heard.wav")
    assert heard.duration_s == pytest.approx(0.5, abs=0.05)


async def test_a_refused_signature_is_one_line(nursery: trio.Nursery) -> None:
    info = await _serve(nursery, auth_token="SERVER_TOKEN_0123456789")
    with trio.fail_after(30), pytest.raises(DialError) as error:
        await run_caller(f"{info.url}/short", keys=["1"], auth_token="WRONG", say=print)
    assert "HTTP 403" in str(error.value)
    assert "signature" in str(error.value)


async def test_a_flow_that_raises_makes_the_dial_fail(nursery: trio.Nursery) -> None:
    info = await _serve(nursery)
    done = await _dial_process(f"{info.url}/raises")
    assert done.returncode == 1
    line = _one_error_line(done.stderr.decode())
    assert "the flow failed" in line
    assert "1011" in line


async def test_ctrl_c_hangs_up_writes_the_wav_and_fails(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await _serve(nursery)
    heard = tmp_path / "heard.wav"
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "callflow",
                "dial",
                "--no-speaker",
                f"{info.url}/long",
                "--out",
                str(heard),
            ],
            stdin=subprocess.PIPE,  # kept open: keys could still be typed
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        assert process.stdout is not None
        assert process.stderr is not None
        out = b""
        while b"playing" not in out:
            chunk = await process.stdout.receive_some()
            assert chunk, out
            out += chunk
        await trio.sleep(0.5)
        process.send_signal(signal.SIGINT)
        err = b""
        while chunk := await process.stderr.receive_some():
            err += chunk
        code = await process.wait()
        assert process.stdin is not None
        await process.stdin.aclose()
    assert code == 130
    line = _one_error_line(err.decode())
    assert "interrupted (Ctrl-C)" in line
    assert str(heard) in line
    assert 0.3 < read_wav(heard).duration_s < 10.0


async def test_typed_keys_a_bad_one_is_one_line_and_the_call_goes_on(
    nursery: trio.Nursery,
) -> None:
    info = await _serve(nursery)
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "callflow", "dial", "--no-speaker", f"{info.url}/short"],
            stdin=b"x\n1\n",
            capture_stdout=True,
            capture_stderr=True,
            env=_env(),
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    line = _one_error_line(done.stderr.decode())
    assert "'X' is not a DTMF key" in line
    out = done.stdout.decode()
    assert "→ dtmf 1" in out
    assert "call ended: the flow ended (close code 1000)" in out
