"""One load run: a fresh server, the load generator against it, the verdict.

:func:`load_run` starts the server (pinned to CPU 0), runs the load generator in its own
process (pinned to CPU 1; :mod:`bench.generators`), and stops the server whatever happens;
:func:`verdict` says whether the run held real time with nothing lost (the definitions are in
:mod:`bench.runner` and docs/performance.md); :func:`steady_run` repeats a run that other
work on the machine disturbed. Runs where the generator itself fell behind are flagged
``generator_bound``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from bench import generators
from bench.catalog import RESULTS, ROOT, Server

__all__ = [
    "GENERATOR_LIMIT",
    "LAG_LIMIT_MS",
    "PACER_LIMIT_MS",
    "Settings",
    "load_run",
    "steady_run",
    "verdict",
    "wait_for_quiet",
]


LAG_LIMIT_MS = 20.0
"""A run holds real time when the p99 event-handling lag is under this (milliseconds)."""
PACER_LIMIT_MS = 5.0
"""Above this p99 lateness (ms) of its own media pacer, the generator itself is the bottleneck."""

GENERATOR_LIMIT = 0.85
"""Above this share of its core, the generator itself may be the bottleneck: the run is
flagged ``generator_bound``."""

_LISTENING = re.compile(r"listening on http://([0-9.]+):([0-9]+)")


@attrs.define
class Settings:
    """How long and how hard each kind of run is (seconds; calls per second)."""

    runs: int = 3
    search_window_s: float = 5.0
    fixed_window_s: float = 10.0
    idle_tail_s: float = 3.5
    search_ramp_rate: float = 200.0
    fixed_ramp_rate: float = 100.0
    settle_s: float = 1.5
    resolution: int = 10
    start_n: int = 50
    max_n: int = 2000
    confirm: bool = True
    pin: bool = True
    max_other_load: float = 0.3
    quiet_wait_s: float = 30.0
    max_tries: int = 2
    fixed_n: int | None = None
    generator: str = "c"
    log: Any = None


# -- one load run ----------------------------------------------------------------------------


def _pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def _server(server: Server, settings: Settings, log_path: Path) -> Iterator[tuple[int, int]]:
    """Start ``server``; yield (pid, port); always stop it (SIGINT, then SIGKILL)."""
    root = server.root or ROOT
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONUNBUFFERED="1")
    env.pop("PLIVO_AUTH_TOKEN", None)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            server.argv,
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            preexec_fn=(lambda: _pin(0)) if settings.pin else None,
        )
        try:
            port = 0
            deadline = time.monotonic() + 60
            assert proc.stdout is not None
            while time.monotonic() < deadline:
                line = proc.stdout.readline().decode(errors="replace")
                if not line:
                    raise RuntimeError(f"{server.key} exited before listening (see {log_path})")
                match = _LISTENING.search(line)
                if match:
                    port = int(match.group(2))
                    break
            if not port:
                raise RuntimeError(f"{server.key} did not listen within 60 s")
            yield proc.pid, port
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def load_run(
    server: Server,
    n: int,
    settings: Settings,
    *,
    window_s: float,
    ramp_rate: float,
    idle_tail_s: float = 0.0,
    seed: int = 1,
) -> dict[str, Any]:
    """One load run of ``n`` calls against a fresh ``server``; the load generator's JSON plus
    ``held`` (bool), ``why`` (what failed) and ``disturbed`` (other load on the machine)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / f"{server.key}.log"
    out = RESULTS / f".run-{server.key}.json"
    with _server(server, settings, log_path) as (pid, port):
        argv = [
            *generators.argv(settings.generator),
            "--url",
            f"ws://127.0.0.1:{port}{server.path}",
            "--calls",
            str(n),
            "--mode",
            server.mode,
            "--server-pid",
            ",".join(str(p) for p in _process_tree(pid)),
            "--call-query",
            "1" if server.call_query else "0",
            "--ramp-rate",
            str(ramp_rate),
            "--settle-s",
            str(settings.settle_s),
            "--window-s",
            str(window_s),
            "--idle-tail-s",
            str(idle_tail_s),
            "--seed",
            str(seed),
            "--out",
            str(out),
        ]
        budget = 40 + n / ramp_rate + window_s + idle_tail_s
        subprocess.run(
            argv,
            cwd=ROOT,
            check=True,
            timeout=budget,
            env=dict(os.environ),
            preexec_fn=(lambda: _pin(1)) if settings.pin else None,
        )
        result: dict[str, Any] = json.loads(out.read_text())
    out.unlink(missing_ok=True)
    result["server_key"] = server.key
    result["held"], result["why"] = verdict(result)
    other = result.get("other_cpu_window_s", 0.0) / max(result["window_s"], 1e-9)
    result["other_load"] = round(other, 3)
    result["disturbed"] = other > settings.max_other_load
    pacer = result["pacer_late_ms"]["p99"] or 0.0
    generator_cores = result.get("generator_cpu_window_s", 0.0) / max(result["window_s"], 1e-9)
    result["generator_cores"] = round(generator_cores, 3)
    result["generator_bound"] = pacer > PACER_LIMIT_MS or generator_cores > GENERATOR_LIMIT
    return result


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor's workers), from /proc."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in task.read_text().split())
    return pids


def verdict(r: dict[str, Any]) -> tuple[bool, str]:
    """Whether a run held real time with nothing lost, and if not, why (see module doc)."""
    why = []
    if r["errors"]:
        why.append(f"errors {r['errors']}")
    if not r["ramp_complete"] or r["calls_streaming"] < r["calls"]:
        why.append(f"only {r['calls_streaming']}/{r['calls']} calls streaming")
    for key in ("unread_at_end", "unanswered_pings", "unanswered_keys", "not_closed"):
        if r[key]:
            why.append(f"{key}={r[key]}")
    p99 = r["lag_ms"]["p99"]
    if p99 is not None and p99 >= LAG_LIMIT_MS:
        why.append(f"lag p99 {p99:.1f} ms")
    if r["ping_lag_ms"]["count"] == 0:
        why.append("no ping probes answered")
    return not why, "; ".join(why)


def _busy_cores(seconds: float) -> float:
    """Cores kept busy on the whole machine over the next ``seconds`` (from /proc/stat)."""
    from bench.loadgen import machine_busy_s

    before = machine_busy_s()
    time.sleep(seconds)
    return (machine_busy_s() - before) / seconds


def wait_for_quiet(settings: Settings) -> float:
    """Wait (at most ``settings.quiet_wait_s``) until other work on the machine uses less
    than ``settings.max_other_load`` cores; the seconds waited."""
    began = time.monotonic()
    while time.monotonic() - began < settings.quiet_wait_s:
        busy = _busy_cores(1.0)
        if busy < settings.max_other_load:
            break
        if time.monotonic() - began < 1.5:
            _say(settings, f"    (machine busy: {busy:.2f} cores in use by others; waiting)")
    return time.monotonic() - began


def steady_run(server: Server, n: int, settings: Settings, **kwargs: Any) -> dict[str, Any]:
    """:func:`load_run` once the machine is quiet, repeated (at most twice more) while other
    load disturbed it."""
    waited = wait_for_quiet(settings)
    result = load_run(server, n, settings, **kwargs)
    tries = 1
    while result["disturbed"] and tries < settings.max_tries:
        _say(settings, f"    (other load {result['other_load']:.2f} cores: repeating)")
        waited += wait_for_quiet(settings)
        result = load_run(server, n, settings, **kwargs)
        tries += 1
    result["tries"] = tries
    result["waited_for_quiet_s"] = round(waited, 1)
    return result


def _say(settings: Settings, text: str) -> None:
    print(text, flush=True)
    if settings.log is not None:
        settings.log.write(text + "\n")
        settings.log.flush()


def _describe(r: dict[str, Any]) -> str:
    srv = r.get("server") or {}
    cpu = srv.get("cpu_window_s", 0.0) / max(r["window_s"], 1e-9)
    key = r["key_lag_ms"]["p99"]
    flags = []
    if r.get("disturbed"):
        flags.append(f"disturbed {r['other_load']:.2f}")
    if r.get("generator_bound"):
        flags.append("GENERATOR-BOUND")
    return (
        f"{'held' if r['held'] else 'FAILED'}: lag p99 {r['lag_ms']['p99']} ms (ping "
        f"{r['ping_lag_ms']['p99']}, key {key}), server cpu {cpu:.0%}"
        + (f"; {r['why']}" if r["why"] else "")
        + (f" [{', '.join(flags)}]" if flags else "")
    )
