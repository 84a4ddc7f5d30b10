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
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import attrs

from bench import compare, generators
from bench.catalog import (
    DEFAULT_SERVERS,
    RESULTS,
    ROOT,
    SERVERS,
    Server,
    add_reference,
    write_prompts,
)
from bench.loadrun import (
    Settings,
    _describe,
    _say,
    steady_run,
)
from bench.table import build_table, figures, render_table

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
