"""The C load generator (bench/cgen): it builds cleanly, its self-test passes, and a short run
against ``callflow serve bench/flows`` behaves as loadgen.mjs does and writes its JSON keys."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import catalog, generators, loadrun

# The keys loadgen.mjs writes (bench/node/loadgen.mjs, run()); the C generator writes the same.
NODE_KEYS = {
    "calls", "mode", "url", "generator", "ramp_s", "ramp_complete", "live_calls_at_window_end",
    "window_s", "errors", "calls_streaming", "unread_at_end", "unanswered_pings",
    "unanswered_keys", "not_closed", "media_sent", "blocked_sends", "ping_lag_ms", "key_lag_ms",
    "lag_ms", "barge_in_ms", "key_to_audio_ms", "ttfa_ms", "handshake_ms", "pacer_late_ms",
    "generator_cpu_window_s", "generator_sys_cpu_window_s", "other_cpu_window_s",
    "generator_cpu_total_s", "server",
}  # fmt: skip
SERVER_KEYS = {
    "cpu_window_s",
    "rss_base_bytes",
    "rss_window_start_bytes",
    "rss_window_end_bytes",
    "rss_idle_bytes",
}
PERCENTILE_KEYS = {"count", "p50", "p90", "p99", "max"}
CALLS = 6


@pytest.fixture(scope="module")
def cgen() -> Path:
    if generators.compiler() is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH: the C generator cannot be built")
    return generators.build_cgen()


@pytest.fixture
def callflow_server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """``callflow serve bench/flows --port 0`` on 127.0.0.1, started and stopped as the bench
    does (``loadrun._server``, not pinned): (pid, port)."""
    with loadrun._server(
        catalog.SERVERS["callflow"], loadrun.Settings(pin=False), tmp_path / "server.log"
    ) as (pid, port):
        yield pid, port


def test_builds_warning_free_and_selftest_passes(cgen: Path, tmp_path: Path) -> None:
    cc = generators.compiler()
    assert cc is not None
    src = generators.CGEN_SOURCES / "loadgen.c"
    argv = [cc, "-O2", "-Wall", "-Wextra", "-o", str(tmp_path / "loadgen"), str(src)]
    built = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    assert "warning" not in built.stderr
    done = subprocess.run([str(cgen), "--selftest"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "selftest ok"


def test_unknown_option_is_refused(cgen: Path) -> None:
    done = subprocess.run([str(cgen), "--nope", "1"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "unknown option --nope" in done.stderr


def test_a_short_ivr_run_against_callflow(
    cgen: Path, callflow_server: tuple[int, int], tmp_path: Path
) -> None:
    pid, port = callflow_server
    out = tmp_path / "run.json"
    argv = [
        str(cgen),
        "--url", f"ws://127.0.0.1:{port}/ivr/stream",
        "--calls", str(CALLS),
        "--mode", "ivr",
        "--server-pid", str(pid),
        "--warmup-calls", "2",
        "--warmup-s", "0.3",
        "--settle-s", "0.5",
        "--window-s", "4",
        "--idle-tail-s", "0.5",
        "--final-timeout-s", "3",
        "--out", str(out),
    ]  # fmt: skip
    subprocess.run(argv, check=True, timeout=40)
    r = json.loads(out.read_text())

    assert set(r) == NODE_KEYS
    assert set(r["server"]) == SERVER_KEYS
    for key in NODE_KEYS:
        if key.endswith("_ms"):
            assert set(r[key]) == PERCENTILE_KEYS, key
    assert r["generator"] == "c"
    assert r["errors"] == {}
    assert r["ramp_complete"] is True
    assert r["calls_streaming"] == CALLS
    assert r["live_calls_at_window_end"] == CALLS
    assert r["unanswered_keys"] == r["unanswered_pings"] == r["unread_at_end"] == 0
    assert r["not_closed"] == 0
    assert r["barge_in_ms"]["count"] > 0
    assert r["key_to_audio_ms"]["count"] > 0
    assert r["key_lag_ms"]["count"] == r["barge_in_ms"]["count"] + r["key_to_audio_ms"]["count"]
    assert r["ttfa_ms"]["count"] == CALLS
    assert r["handshake_ms"]["count"] == CALLS
    assert r["ping_lag_ms"]["count"] >= CALLS * 7  # a ping every 0.5 s of a 4 s window
    assert r["media_sent"] > CALLS * 50 * 4
    assert r["server"]["cpu_window_s"] > 0
    assert r["server"]["rss_idle_bytes"] > 0
    held, why = loadrun.verdict(r)
    assert held, why
