"""`callflow serve flows/` and `callflow dial` as real processes, talking over 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from callflow.audio import read_wav
from flows.support import PROMPTS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("PLIVO_AUTH_TOKEN", None)
    env.pop("PLIVO_AUTH_ID", None)
    env.update(extra)
    return env


async def test_dial_calls_the_served_support_flow(tmp_path: Path) -> None:
    token = "E2E_TOKEN_0123456789"
    server = await trio.lowlevel.open_process(
        [sys.executable, "-m", "callflow", "serve", str(ROOT / "flows"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(PLIVO_AUTH_TOKEN=token),
    )
    assert server.stdout is not None
    try:
        out = b""
        with trio.fail_after(20):
            while b"listening on " not in out or not out.endswith(b"\n"):
                chunk = await server.stdout.receive_some()
                assert chunk, f"serve exited early: {out!r}"
                out += chunk
        url = out.decode().split("listening on ", 1)[1].split()[0]
        heard = tmp_path / "heard.wav"
        with trio.fail_after(60):
            dial = await trio.run_process(
                [
                    sys.executable,
                    "-m",
                    "callflow",
                    "dial",
                    f"{url}/support",
                    "--keys",
                    "2",
                    "--out",
                    str(heard),
                ],
                capture_stdout=True,
                capture_stderr=True,
                env=_env(PLIVO_AUTH_TOKEN=token),  # signs the answer webhook as Plivo does
                check=False,
            )
        text = dial.stdout.decode()
        assert dial.returncode == 0, dial.stderr.decode()
        assert "→ dtmf 2" in text
        assert "call ended: the flow ended (close code 1000)" in text
        audio = read_wav(heard)
        # welcome, then the key barges in as the menu begins: support, goodbye
        expected = PROMPTS.welcome.duration_s + PROMPTS.support.duration_s
        expected += PROMPTS.goodbye.duration_s
        assert audio.duration_s == pytest.approx(expected, abs=0.6)
    finally:
        server.send_signal(signal.SIGINT)
        with trio.move_on_after(10):
            await server.wait()
        if server.returncode is None:
            server.kill()
            await server.wait()
