"""The text-only flow served by `callflow serve flows/` and heard by `callflow dial`, as real
processes over 127.0.0.1, with the engine the project installs (Piper and its voice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from callflow.audio import read_wav
from callflow.protocol import Format
from callflow.voice import RenderCache, TtsUnavailable, resolve_tts
from flows.account import TEXT

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


async def test_dial_hears_the_text_only_flow_and_the_second_call_hits_the_cache(
    tmp_path: Path,
) -> None:
    try:
        engine = resolve_tts("auto")
    except TtsUnavailable as exc:
        pytest.skip(str(exc))
    cache = tmp_path / "prompts"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["CALLFLOW_PROMPT_CACHE"] = str(cache)
    env.pop("PLIVO_AUTH_TOKEN", None)
    env.pop("PLIVO_AUTH_ID", None)
    server = await trio.lowlevel.open_process(
        [sys.executable, "-m", "callflow", "serve", str(ROOT / "flows"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert server.stdout is not None
    try:
        out = b""
        with trio.fail_after(30):
            while b"listening on " not in out or not out.endswith(b"\n"):
                chunk = await server.stdout.receive_some()
                assert chunk, f"serve exited early: {out!r}"
                out += chunk
        url = out.decode().split("listening on ", 1)[1].split()[0]
        heard: list[float] = []
        for attempt in range(2):
            wav = tmp_path / f"heard{attempt}.wav"
            argv = [sys.executable, "-m", "callflow", "dial", f"{url}/account", "--keys", "0"]
            with trio.fail_after(90):
                dial = await trio.run_process(
                    [*argv, "--out", str(wav)],
                    capture_stdout=True,
                    capture_stderr=True,
                    env=env,
                    check=False,
                )
            assert dial.returncode == 0, dial.stderr.decode()
            assert "call ended: the flow ended (close code 1000)" in dial.stdout.decode()
            heard.append(read_wav(wav).duration_s)
        renders = RenderCache(cache)
        names = {
            name: RenderCache.key(engine.name, text, engine.default_voice)
            for name, text in TEXT.items()
        }
        spoken = [renders.get(names[n], Format.MULAW_8K) for n in ("welcome", "agent", "goodbye")]
        assert all(a is not None for a in spoken)  # rendered by the first call, kept on disk
        # The caller pressed 0 as the menu began: welcome, agent, goodbye (and a little menu).
        least = sum(a.duration_s for a in spoken if a is not None)
        assert heard[0] >= least - 0.5
        assert heard[1] == pytest.approx(heard[0], abs=0.6)  # the same call, from the cache
        wavs = sorted(p.name for p in cache.rglob("*.wav"))
        mulaw = sorted(p.name for p in cache.rglob("*.MULAW_8K"))
        assert len(wavs) == len(mulaw) >= 3  # each rendering encoded once, for its one format
    finally:
        server.send_signal(signal.SIGINT)
        with trio.move_on_after(10):
            await server.wait()
        if server.returncode is None:
            server.kill()
            await server.wait()
