"""Where a server's time goes under load: py-spy samples of it while the load generator runs.

    python -m bench.profile [--server callflow] [--calls 100] [--duration 10]

Starts the server (pinned to CPU 0) and :mod:`bench.loadgen` (CPU 1) as the bench does, lets
the calls ramp up, then runs ``py-spy record --nonblocking --format raw`` on the server for
``--duration`` seconds. Prints the share of samples per layer (by the file of the innermost
Python frame: the code that was running, or that made the system call) and the functions with
the most own samples. The raw (collapsed) stacks are kept in ``bench/results/``.
Needs ``py-spy`` (installed by ``nox -s bench``) and permission to trace the server (root, or
``ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.catalog import PY, RESULTS, ROOT, SERVERS
from bench.loadrun import Settings, _server

LAYERS: tuple[tuple[str, str], ...] = (
    # (regex on the frame's file as py-spy writes it, e.g. "trio/_core/_run.py"; layer)
    (r"(^|/)callflow/server/_wsfast", "callflow server: _wsfast transport"),
    (r"(^|/)callflow/server/", "callflow server glue (_app, _http, _ws_transport)"),
    (r"(^|/)callflow/runtime/", "callflow runtime (reader, Call, ledger)"),
    (r"(^|/)callflow/protocol/", "callflow protocol (parse/encode)"),
    (r"(^|/)callflow/", "callflow (other)"),
    (r"(^|/)(bench/)?(flows/)?ivr\.py$|(^|/)bench/", "bench flow / server code"),
    (r"(^|/)trio_websocket/", "trio-websocket"),
    (r"(^|/)wsproto/", "wsproto"),
    (r"(^|/)h11/", "h11"),
    (r"(^|/)websockets/", "websockets"),
    (r"(^|/)trio/_core/", "trio core (scheduler, epoll, cancel scopes)"),
    (r"(^|/)trio/", "trio streams, sockets, channels, sync"),
    (r"(^|/)asyncio/", "asyncio"),
    (r"(^|/)pydantic", "pydantic"),
    (r"(^|/)plivo_stream/", "plivo-stream-sdk"),
    (r"(^|/)json/", "json"),
)
IDLE = re.compile(
    r"^(EpollIOManager\.get_events|EpollIOManager\._epoll_wait|"
    r"select|EpollSelector\.select|BaseSelector\.select) "
)
"""Leaf frames that are the event loop waiting in epoll: idle, left out of the shares."""
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*)(:(?P<line>\d+))?\)$")


def layer_of(file: str) -> str:
    """The layer a source file belongs to (see :data:`LAYERS`)."""
    for pattern, name in LAYERS:
        if re.search(pattern, file):
            return name
    return "other"


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    """Samples per layer and per function (own samples) from py-spy's raw (collapsed) stacks."""
    layers: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        if IDLE.match(frames[-1]):
            idle += count
            continue
        total += count
        leaf = _FRAME.match(frames[-1])
        file = leaf.group("file") if leaf else frames[-1]
        func = leaf.group("func") if leaf else frames[-1]
        layers[layer_of(file)] += count
        short = "/".join(Path(file).parts[-2:])
        functions[f"{func} ({short})"] += count
        seen = set()
        for frame in frames:
            m = _FRAME.match(frame)
            if m is None:
                continue
            key = f"{m.group('func')} ({'/'.join(Path(m.group('file')).parts[-2:])})"
            if key not in seen:
                seen.add(key)
                inclusive[key] += count

    def pct(n: int) -> float:
        return round(100.0 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "idle_samples": idle,
        "layers_pct": {k: pct(v) for k, v in layers.most_common()},
        "top_self_pct": {k: pct(v) for k, v in functions.most_common(top)},
        "top_inclusive_pct": {k: pct(v) for k, v in inclusive.most_common(top)},
    }


def render(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"{summary['samples']} busy samples ({summary['idle_samples']} idle in epoll left out);"
        " by layer (own time):"
    ]
    lines += [f"  {v:5.1f} %  {k}" for k, v in summary["layers_pct"].items()]
    lines.append("functions with the most own time:")
    lines += [f"  {v:5.1f} %  {k}" for k, v in summary["top_self_pct"].items()]
    lines.append("functions with the most inclusive time:")
    lines += [f"  {v:5.1f} %  {k}" for k, v in summary["top_inclusive_pct"].items()]
    return lines


def profile(server_key: str, calls: int, duration: float, rate: int) -> dict[str, Any]:
    """Profile ``server_key`` under ``calls`` simulated calls for ``duration`` seconds."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    server = SERVERS[server_key]
    settings = Settings()
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw_path = RESULTS / f"profile-{server_key}-{calls}.txt"
    ramp_s = calls / 100.0 + 2.0 + 1.0
    with _server(server, settings, RESULTS / f"{server_key}.log") as (pid, port):
        gen = subprocess.Popen(
            [
                PY,
                "-m",
                "bench.loadgen",
                "--url",
                f"ws://127.0.0.1:{port}{server.path}",
                "--calls",
                str(calls),
                "--mode",
                server.mode,
                "--server-pid",
                str(pid),
                "--window-s",
                str(duration + 2.0),
                "--cpu",
                "1",
                "--out",
                str(RESULTS / f".profile-{server_key}.json"),
            ],
            cwd=ROOT,
        )
        try:
            time.sleep(ramp_s)
            base = [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(duration)),
                "--rate",
                str(rate),
                "--nonblocking",
            ]
            subprocess.run(
                [*base, "--format", "raw", "--output", str(raw_path)],
                check=True,
                capture_output=True,
            )
            gen.wait(timeout=120)
        finally:
            if gen.poll() is None:
                gen.kill()
                gen.wait()
    result_path = RESULTS / f".profile-{server_key}.json"
    load = json.loads(result_path.read_text()) if result_path.exists() else {}
    result_path.unlink(missing_ok=True)
    summary = summarize(raw_path.read_text())
    summary["raw_stacks"] = str(raw_path.relative_to(ROOT))
    summary["calls"] = calls
    summary["server"] = server_key
    srv = load.get("server") or {}
    if load:
        summary["server_cpu_cores"] = round(srv.get("cpu_window_s", 0.0) / load["window_s"], 3)
        summary["ping_lag_p99_ms"] = load["ping_lag_ms"]["p99"]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--server", default="callflow", choices=sorted(SERVERS))
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and Path("/proc/sys/kernel/yama/ptrace_scope").exists():
        scope = Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
        if scope != "0":
            print("py-spy needs root or kernel.yama.ptrace_scope=0", file=sys.stderr)
    summary = profile(args.server, args.calls, args.duration, args.rate)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(
            f"{args.server} at {args.calls} calls: server {summary.get('server_cpu_cores')} "
            f"cores, ping p99 {summary.get('ping_lag_p99_ms')} ms"
        )
        print("\n".join(render(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
