"""The one command behind ``nox -s bench``: every server under the same load, one table.

For each server: a capacity search (the largest N of simulated calls held at real time), then
repeated runs at one fixed N for latencies, CPU and memory; then the micro-benchmarks. Prints
the table (with callflow's ratios to the official SDK and to the bare transport) and writes
everything, raw runs included, as JSON under ``bench/results/``.

Each load run starts the server fresh (pinned to CPU 0), runs :mod:`bench.loadgen` in its own
process (pinned to CPU 1), and stops the server, whatever happens. A run during which other
work on the machine took more than ``--max-other-load`` of a core is repeated (up to twice),
and flagged if it stays disturbed.

Definitions (also in docs/performance.md):

* *held at real time*: every call connected and streamed; every ping probe, every key press
  and the final ping after each call's last media frame was answered (nothing lost); the p99
  of the event-handling lag (see :mod:`bench.loadgen`) over all probes of the window (pings
  and key presses together) under 20 ms.
* *capacity*: the largest N held; searched upward (50, then +50 % a step), bisected to
  ``--resolution``, then confirmed: N holds in at least 2 of 3 runs (else 8 % lower, again).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from bench import compare, generators

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LAG_LIMIT_MS = 20.0
"""A run holds real time when the p99 event-handling lag is under this (milliseconds)."""
PACER_LIMIT_MS = 5.0
"""Above this p99 lateness (ms) of its own media pacer, the generator itself is the bottleneck."""

GENERATOR_LIMIT = 0.85
"""Above this share of its core, the generator itself may be the bottleneck: the run is
flagged ``generator_bound``."""

_LISTENING = re.compile(r"listening on http://([0-9.]+):([0-9]+)")


@attrs.frozen
class Server:
    """A server under test: how to start it and where its stream is.

    Attributes:
        key: short name used in the JSON (``callflow``, ``sdk``, ``bare``).
        label: the column title.
        argv: the command; ``{port}`` is replaced by 0 (any free port).
        path: the stream WebSocket's path.
        mode: ``ivr`` (the caller presses keys) or ``bare`` (media only).
        call_query: each stream URL names its call (``?CallUUID=…``).
        root: the source tree it runs from (its working directory and ``PYTHONPATH``);
            ``None`` for this checkout. A reference server (``--reference REV``) runs
            from a worktree of that commit.
    """

    key: str
    label: str
    argv: tuple[str, ...]
    path: str
    mode: str
    call_query: bool = False
    root: Path | None = None


PY = sys.executable
SERVERS: dict[str, Server] = {
    "callflow": Server(
        "callflow",
        "callflow serve",
        (PY, "-m", "callflow", "serve", "bench/flows", "--port", "0", "--log-level", "warning"),
        "/ivr/stream",
        "ivr",
    ),
    "sdk": Server(
        "sdk",
        "plivo-stream-sdk",
        (PY, "-m", "bench.servers.sdk_ivr", "--port", "0"),
        "/ivr/stream",
        "ivr",
    ),
    "bare": Server(
        "bare",
        "bare _wsfast + read loop (callflow's layer)",
        (PY, "-m", "bench.servers.wsfast_ivr", "--bare", "--port", "0"),
        "/ivr/stream",
        "bare",
    ),
    "bare_task": Server(
        "bare_task",
        "bare _wsfast, a task per socket",
        (PY, "-m", "bench.servers.wsfast_ivr", "--bare", "--no-read-loop", "--port", "0"),
        "/ivr/stream",
        "bare",
    ),
    "bare_trio_websocket": Server(
        "bare_trio_websocket",
        "bare trio-websocket",
        (PY, "-m", "bench.servers.bare_trio_websocket", "--port", "0"),
        "/ivr/stream",
        "bare",
    ),
    "node": Server(
        "node",
        "bare Node ws IVR",
        ("node", "bench/node/ivr_server.mjs", "--port", "0", "--prompts", "bench/results/prompts"),
        "/ivr/stream",
        "ivr",
    ),
    # The --workers comparison (docs/performance.md, "Workers"): the same server with one and
    # with two worker processes; the generator names each call in its stream URL (as
    # callflow's answer XML does), so every stream the kernel hands to the wrong worker is
    # handed over to its owner, and the CPU figure sums the supervisor and its workers.
    "callflow_w1": Server(
        "callflow_w1",
        "callflow serve --workers 1",
        (PY, "-m", "callflow", "serve", "bench/flows", "--port", "0", "--log-level", "warning"),
        "/ivr/stream",
        "ivr",
        call_query=True,
    ),
    "callflow_w2": Server(
        "callflow_w2",
        "callflow serve --workers 2",
        (
            PY,
            "-m",
            "callflow",
            "serve",
            "bench/flows",
            "--port",
            "0",
            "--log-level",
            "warning",
            "--workers",
            "2",
        ),
        "/ivr/stream",
        "ivr",
        call_query=True,
    ),
    "wsfast": Server(
        "wsfast",
        "runtime on _wsfast, no HTTP routes",
        (PY, "-m", "bench.servers.wsfast_ivr", "--port", "0"),
        "/ivr/stream",
        "ivr",
    ),
}
DEFAULT_SERVERS = ("callflow", "sdk", "bare", "node")


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


def add_reference(rev: str) -> str:
    """Add ``callflow serve`` at commit ``rev`` as the server ``callflow@REV`` (a detached git
    worktree under ``bench/results/``, made once and reused), so this checkout and a reference
    run side by side in one bench run. Returns the server's key.

    Raises:
        subprocess.CalledProcessError: ``rev`` is not a commit of this repository.
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = RESULTS / f"ref-{commit}"
    if not (tree / "callflow").is_dir():
        RESULTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(tree), commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    key = f"callflow@{commit}"
    base = SERVERS["callflow"]
    SERVERS[key] = attrs.evolve(base, key=key, label=f"callflow serve @{commit}", root=tree)
    RATIOS_EXTRA.append(("callflow", key))
    return key


RATIOS_EXTRA: list[tuple[str, str]] = []
"""Ratio columns added at run time (this checkout ÷ a ``--reference``)."""


def write_prompts() -> Path:
    """The bench flow's two prompts as raw μ-law files (``prompt0.ulaw``, ``prompt1.ulaw``)
    under ``bench/results/prompts``, for the Node IVR server to play the same bytes."""
    from bench.servers.sdk_ivr import PROMPTS

    folder = RESULTS / "prompts"
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(PROMPTS):
        (folder / f"prompt{i}.ulaw").write_bytes(data)
    return folder


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


# -- capacity search ---------------------------------------------------------------------------


def _round(n: float, to: int) -> int:
    return max(to, round(n / to) * to)


def capacity_search(server: Server, settings: Settings) -> dict[str, Any]:
    """The largest N held at real time (module docstring); every run is kept in ``runs``."""
    runs: list[dict[str, Any]] = []
    verdicts: dict[int, list[bool]] = {}

    def attempt(n: int) -> bool:
        _say(settings, f"  {server.key}: N={n} ...")
        r = steady_run(
            server,
            n,
            settings,
            window_s=settings.search_window_s,
            ramp_rate=settings.search_ramp_rate,
            seed=len(runs) + 1,
        )
        r["phase"] = "search"
        runs.append(r)
        verdicts.setdefault(n, []).append(r["held"])
        _say(settings, f"  {server.key}: N={n} {_describe(r)}")
        return bool(r["held"])

    held, failed = 0, None
    n = settings.start_n
    while n <= settings.max_n:
        if attempt(n):
            held = n
            n = _round(n + max(50, n // 2), 10)
        else:
            failed = n
            break
    if failed is None:
        failed = settings.max_n + 1
    res = settings.resolution
    while failed - held > max(res, int(0.05 * held)):
        mid = _round((held + failed) / 2, 5)
        if mid in (held, failed):
            break
        if attempt(mid):
            held = mid
        else:
            failed = mid
    capacity = held
    if settings.confirm and settings.runs > 1 and capacity > 0:
        for _ in range(4):  # at most four steps down
            while len(verdicts[capacity]) < 3:
                attempt(capacity)
                if sum(verdicts[capacity]) >= 2 or verdicts[capacity].count(False) >= 2:
                    break
            if sum(verdicts[capacity]) >= 2:
                break
            # not confirmed: 8 % lower (but not below the largest N that held before)
            lower = [m for m, v in verdicts.items() if m < capacity and any(v)]
            step_down = min(_round(capacity * 0.92, 5), capacity - res)
            capacity = max(step_down, max(lower)) if lower else step_down
            if capacity <= 0:
                capacity = 0
                break
            verdicts.setdefault(capacity, [])
    return {
        "capacity": capacity,
        "verdicts": {str(k): v for k, v in sorted(verdicts.items())},
        "runs": runs,
    }


# -- fixed-N runs and figures ------------------------------------------------------------------


def fixed_runs(server: Server, n: int, settings: Settings) -> list[dict[str, Any]]:
    """``settings.runs`` runs at ``n`` calls with the long window and the idle tail."""
    out = []
    for i in range(settings.runs):
        _say(settings, f"  {server.key}: N={n} run {i + 1}/{settings.runs} ...")
        r = steady_run(
            server,
            n,
            settings,
            window_s=settings.fixed_window_s,
            ramp_rate=settings.fixed_ramp_rate,
            idle_tail_s=settings.idle_tail_s,
            seed=100 + i,
        )
        r["phase"] = "fixed"
        _say(settings, f"  {server.key}: N={n} {_describe(r)}")
        out.append(r)
    return out


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-run figures of ``runs`` (same N) and their medians."""
    per_run = []
    for r in runs:
        srv = r.get("server") or {}
        n = r["calls"]
        call_minutes = n * r["window_s"] / 60.0
        rss_idle = srv.get("rss_idle_bytes") or srv.get("rss_window_end_bytes")
        per_run.append(
            {
                "held": r["held"],
                "lag_p99_ms": r["lag_ms"]["p99"],
                "ping_lag_p99_ms": r["ping_lag_ms"]["p99"],
                "barge_in_p50_ms": r["barge_in_ms"]["p50"],
                "barge_in_p99_ms": r["barge_in_ms"]["p99"],
                "barge_in_count": r["barge_in_ms"]["count"],
                "key_to_audio_p50_ms": r["key_to_audio_ms"]["p50"],
                "key_to_audio_p99_ms": r["key_to_audio_ms"]["p99"],
                "ttfa_p50_ms": r["ttfa_ms"]["p50"],
                "ttfa_p99_ms": r["ttfa_ms"]["p99"],
                "cpu_s_per_call_minute": round(srv.get("cpu_window_s", 0.0) / call_minutes, 4)
                if call_minutes
                else None,
                "server_cpu_cores": round(srv.get("cpu_window_s", 0.0) / r["window_s"], 3),
                "rss_per_idle_call_kib": round((rss_idle - srv["rss_base_bytes"]) / n / 1024, 1)
                if rss_idle and srv.get("rss_base_bytes")
                else None,
            }
        )
    keys = [k for k in per_run[0] if k != "held"] if per_run else []
    median = {k: _median([p[k] for p in per_run]) for k in keys}
    median["held_runs"] = sum(1 for p in per_run if p["held"])
    median["runs"] = len(per_run)
    return {"median": median, "per_run": per_run}


# -- the table -------------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str, bool], ...] = (
    # (figure key, title, unit, higher is better)
    ("capacity", "real-time calls per core (p99 lag < 20 ms, nothing lost)", "calls", True),
    ("lag_p99_ms", "event-handling lag p99 at N", "ms", False),
    ("barge_in_p50_ms", "barge-in (key → clearAudio) p50 at N", "ms", False),
    ("barge_in_p99_ms", "barge-in (key → clearAudio) p99 at N", "ms", False),
    ("ttfa_p50_ms", "time to first audio (start → playAudio) p50 at N", "ms", False),
    ("ttfa_p99_ms", "time to first audio (start → playAudio) p99 at N", "ms", False),
    ("key_to_audio_p99_ms", "key → next prompt p99 at N", "ms", False),
    ("cpu_s_per_call_minute", "server CPU per call-minute at N", "s", False),
    ("cpu_bound_calls", "CPU-bound ceiling: 60 s ÷ CPU per call-minute", "calls", True),
    ("rss_per_idle_call_kib", "resident memory per idle call", "KiB", False),
)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "calls":
        return f"{value:.0f}"
    if unit == "s":
        return f"{value:.3f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


RATIOS: tuple[tuple[str, str], ...] = (
    ("callflow", "sdk"),
    ("callflow", "bare"),
    ("callflow", "bare_trio_websocket"),
    ("callflow", "node"),
    ("bare", "bare_task"),
)
"""The ratio columns (a ÷ b), each shown when both servers were measured."""


def _ratio_pairs(order: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in (*RATIOS, *RATIOS_EXTRA) if a in order and b in order]


def build_table(results: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """Rows of figures per server, with the ratios of :data:`RATIOS` (same run)."""
    rows = []
    for key, title, unit, higher in ROWS:
        values: dict[str, float | None] = {}
        for name in order:
            res = results[name]
            if key == "capacity":
                values[name] = res["capacity"]["capacity"]
            elif key == "cpu_bound_calls":
                cpu = res["fixed"]["median"].get("cpu_s_per_call_minute")
                values[name] = round(60.0 / cpu) if cpu else None
            else:
                values[name] = res["fixed"]["median"].get(key)
        ratios = {}
        for a, b in _ratio_pairs(order):
            x, y = values.get(a), values.get(b)
            ratios[f"{a}/{b}"] = round(x / y, 2) if x is not None and y else None
        rows.append(
            {
                "figure": key,
                "title": title,
                "unit": unit,
                "higher_is_better": higher,
                "values": values,
                "ratios": ratios,
            }
        )
    return {"rows": rows}


def render_table(
    table: dict[str, Any], order: Sequence[str], fixed_n: int, markdown: bool = False
) -> str:
    """The table as text (or a Markdown table)."""
    pairs = _ratio_pairs(order)
    heads = ["figure (unit)"] + [SERVERS[k].label for k in order]
    heads += [f"{a} ÷ {b}" for a, b in pairs]
    lines = []
    for row in table["rows"]:
        title = row["title"].replace(" at N", f" at N={fixed_n}")
        cells = [f"{title} ({row['unit']})"]
        cells += [_fmt(row["values"].get(k), row["unit"]) for k in order]
        for a, b in pairs:
            ratio = row["ratios"][f"{a}/{b}"]
            cells.append("–" if ratio is None else f"{ratio:.2f}×")
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [heads, *lines]) for i in range(len(heads))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
        )

    return "\n".join([fmt(heads), fmt(["-" * w for w in widths]), *[fmt(c) for c in lines]])


# -- machine and versions ----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "callflow",
        "trio",
        "trio-websocket",
        "wsproto",
        "websockets",
        "plivo-stream-sdk",
        "pydantic",
        "numpy",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
        "commit": commit,
        "versions": versions,
    }


# -- main ----------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one run per figure, short windows")
    p.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated, from {', '.join(SERVERS)}",
    )
    p.add_argument("--runs", type=int, default=None, help="repeats per figure (3)")
    p.add_argument(
        "--fixed-n",
        type=int,
        default=None,
        help="N for latency/CPU/memory (default: 80%% of the smallest capacity)",
    )
    p.add_argument(
        "--capacity", default="", help="skip the search: e.g. callflow=120,sdk=90,bare=190"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server/generator to CPUs")
    p.add_argument(
        "--reference",
        default="",
        metavar="REV",
        help="also run callflow serve at commit REV, side by side (e.g. the last release)",
    )
    p.add_argument(
        "--generator",
        choices=list(generators.KINDS),
        default="c",
        help="the load generator: c (bench/cgen, built on first use; the default), node or python",
    )
    p.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="skip the same-N comparisons (barge-in at 80%% of callflow's capacity, CPU at 400)",
    )
    p.add_argument(
        "--no-target",
        action="store_true",
        help="skip the barge-in check at 80%% of callflow's own capacity",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    order = [s.strip() for s in args.servers.split(",") if s.strip()]
    if args.reference:
        order.insert(order.index("callflow") + 1 if "callflow" in order else 0, "")
        order[order.index("")] = add_reference(args.reference)
    for name in order:
        if name not in SERVERS:
            print(f"unknown server {name!r}", file=sys.stderr)
            return 2
    settings = Settings()
    if args.quick:
        settings = Settings(
            runs=1,
            search_window_s=3.0,
            fixed_window_s=5.0,
            idle_tail_s=3.5,
            settle_s=1.0,
            resolution=20,
            confirm=False,
        )
    if args.runs is not None:
        settings.runs = args.runs
    settings.pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    settings.generator = generators.resolve(args.generator, print)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_prompts()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    settings.log = open(RESULTS / f"bench-{stamp}.log", "w")  # noqa: SIM115
    began = time.monotonic()
    known = {}
    for item in filter(None, args.capacity.split(",")):
        name, _, value = item.partition("=")
        known[name.strip()] = int(value)

    info = machine()
    _say(
        settings,
        f"machine: {info['nproc']} × {info['cpu_model']}, Python {info['python']}, "
        f"load average {info['loadavg'][0]:.2f}",
    )
    results: dict[str, Any] = {name: {} for name in order}
    for name in order:
        if name in known:
            results[name]["capacity"] = {
                "capacity": known[name],
                "verdicts": {},
                "runs": [],
                "given": True,
            }
            continue
        _say(settings, f"capacity search: {SERVERS[name].label}")
        results[name]["capacity"] = capacity_search(SERVERS[name], settings)
        _say(settings, f"  => {name}: {results[name]['capacity']['capacity']} calls")

    capacities = [results[n]["capacity"]["capacity"] for n in order]
    fixed_n = args.fixed_n or max(
        10, int(0.8 * min(c for c in capacities if c) / 10) * 10 if any(capacities) else 50
    )
    for name in order:
        _say(settings, f"fixed load N={fixed_n}: {SERVERS[name].label}")
        runs = fixed_runs(SERVERS[name], fixed_n, settings)
        results[name]["fixed_runs"] = runs
        results[name]["fixed"] = figures(runs)

    same_n = cpu400 = None
    if not args.no_compare:

        def runs_at(name: str, n: int) -> list[dict[str, Any]]:
            return fixed_runs(SERVERS[name], n, settings)

        def say(text: str) -> None:
            _say(settings, text)

        same_n = compare.barge_at_80(results, order, fixed_n, runs_at, figures, say)
        cpu400 = compare.cpu_at_400(results, order, fixed_n, runs_at, figures, say)

    targets: dict[str, Any] = {}
    for name in ("callflow", "wsfast"):
        if name not in order or args.no_target:
            continue
        if name == "callflow" and same_n and not same_n["servers"][name]["beyond_capacity"]:
            targets[name] = {"n": same_n["n"], "figures": same_n["servers"][name]["figures"]}
            continue
        cap = results[name]["capacity"]["capacity"]
        target_n = max(10, int(0.8 * cap / 10) * 10)
        if target_n != fixed_n and cap:
            _say(settings, f"barge-in target: {name} at 80% of its capacity, N={target_n}")
            runs = fixed_runs(SERVERS[name], target_n, settings)
            targets[name] = {"n": target_n, "runs": runs, "figures": figures(runs)}
        else:
            targets[name] = {"n": fixed_n, "figures": results[name]["fixed"]}

    micro: dict[str, Any] | None = None
    if not args.no_micro:
        _say(settings, "micro-benchmarks")
        from bench import micro as micro_mod

        micro = micro_mod.run(quick=args.quick)
        for line in micro_mod.render(micro):
            _say(settings, "  " + line)

    table = build_table(results, order)
    text = render_table(table, order, fixed_n)
    elapsed = time.monotonic() - began
    info["loadavg_end"] = os.getloadavg()
    doc = {
        "machine": info,
        "settings": {k: v for k, v in attrs.asdict(settings).items() if k != "log"},
        "servers": {n: attrs.asdict(SERVERS[n]) for n in order},
        "fixed_n": fixed_n,
        "table": table,
        "table_text": text,
        "table_markdown": render_table(table, order, fixed_n, markdown=True),
        "targets": targets,
        "same_n": same_n,
        "cpu_at_400": cpu400,
        "results": results,
        "micro": micro,
        "elapsed_s": round(elapsed, 1),
    }
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (RESULTS / "latest.json").write_text(path.read_text())
    _say(settings, "")
    _say(settings, text)
    labels = {name: SERVERS[name].label for name in order}
    for line in compare.render(same_n, cpu400, labels):
        _say(settings, line)
    _say(settings, f"load generator: {settings.generator}")
    extra = compare.all_runs(same_n) + compare.all_runs(cpu400)
    for name in order:
        runs = results[name]["capacity"]["runs"] + results[name]["fixed_runs"]
        seen = {id(r) for r in runs}
        runs += [r for r in extra if r.get("server_key") == name and id(r) not in seen]
        bound = [r["calls"] for r in runs if r.get("generator_bound")]
        if bound:
            _say(
                settings,
                f"  {name}: {len(bound)} of {len(runs)} runs GENERATOR-BOUND (at N={bound}): "
                "their figures are the generator's, not the server's",
            )
    for name, target in targets.items():
        fig = target["figures"]["median"]
        _say(
            settings,
            f"barge-in at 80% of {name}'s capacity (N={target['n']}): "
            f"p50 {fig.get('barge_in_p50_ms')} ms, p99 {fig.get('barge_in_p99_ms')} ms "
            "(target: p99 < 5 ms)",
        )
    _say(settings, f"\n{elapsed / 60:.1f} min; JSON: {path.relative_to(ROOT)}")
    settings.log.close()
    return 0
