"""Same-N comparisons for ``python -m bench``, after the capacity searches.

* *barge-in at 80 % of callflow's capacity*: every server of the run at that one N (a server
  whose own capacity is below it is marked "beyond capacity" and not run), barge-in p50/p99
  side by side; the target: callflow's p99 ≤ the bare Node server's, in the same run.
* *CPU at N=400*: callflow, the bare Node server and any ``--reference`` at 400 calls, server
  CPU per call-minute and callflow ÷ node (target ≤ 1.5×).

Both reuse the fixed-load runs when their N is the fixed N. Runs are :func:`bench.runner.fixed_runs`
(so ``--quick`` makes one of each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

CPU_N = 400
"""The N of the CPU-per-call-minute comparison."""
CPU_RATIO_TARGET = 1.5
"""callflow's CPU per call-minute at :data:`CPU_N`, at most this many times Node's."""

Runs = Callable[[str, int], list[dict[str, Any]]]
"""``runs(server_key, n)``: fixed-load runs of that server at ``n``."""
Figures = Callable[[list[dict[str, Any]]], dict[str, Any]]


def _n80(capacity: int) -> int:
    return max(10, int(0.8 * capacity / 10) * 10)


def _reuse_or_run(
    name: str, n: int, results: dict[str, Any], fixed_n: int, runs: Runs, figures: Figures
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if n == fixed_n and results[name].get("fixed_runs"):
        return results[name]["fixed_runs"], results[name]["fixed"]
    done = runs(name, n)
    return done, figures(done)


def barge_at_80(
    results: dict[str, Any],
    order: Sequence[str],
    fixed_n: int,
    runs: Runs,
    figures: Figures,
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """Every server of ``order`` at 80 % of callflow's capacity; ``None`` without callflow."""
    if "callflow" not in order or not results["callflow"]["capacity"]["capacity"]:
        return None
    n = _n80(results["callflow"]["capacity"]["capacity"])
    out: dict[str, Any] = {"n": n, "servers": {}}
    for name in order:
        cap = results[name]["capacity"]["capacity"]
        if cap < n:
            out["servers"][name] = {"beyond_capacity": True, "capacity": cap}
            continue
        say(f"same N={n} (80% of callflow's capacity): {name}")
        done, fig = _reuse_or_run(name, n, results, fixed_n, runs, figures)
        out["servers"][name] = {"beyond_capacity": False, "figures": fig, "runs": done}
    out["target"] = _target(out["servers"], "barge_in_p99_ms", "callflow", "node", 1.0)
    return out


def cpu_at_400(
    results: dict[str, Any],
    order: Sequence[str],
    fixed_n: int,
    runs: Runs,
    figures: Figures,
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """callflow, node and the references at :data:`CPU_N`; ``None`` without callflow and node."""
    names = [k for k in order if k in ("callflow", "node") or k.startswith("callflow@")]
    if "callflow" not in names or "node" not in names:
        return None
    out: dict[str, Any] = {"n": CPU_N, "servers": {}}
    for name in names:
        say(f"CPU at N={CPU_N}: {name}")
        done, fig = _reuse_or_run(name, CPU_N, results, fixed_n, runs, figures)
        out["servers"][name] = {"beyond_capacity": False, "figures": fig, "runs": done}
    out["target"] = _target(
        out["servers"], "cpu_s_per_call_minute", "callflow", "node", CPU_RATIO_TARGET
    )
    return out


def _target(servers: dict[str, Any], key: str, a: str, b: str, limit: float) -> dict[str, Any]:
    def value(name: str) -> float | None:
        s = servers.get(name) or {}
        return None if s.get("beyond_capacity", True) else s["figures"]["median"].get(key)

    x, y = value(a), value(b)
    ratio = round(x / y, 3) if x is not None and y else None
    met = ratio is not None and ratio <= limit
    return {"figure": key, a: x, b: y, "ratio": ratio, "limit_ratio": limit, "met": met}


def all_runs(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every load run of one section (for the generator-bound flags)."""
    if not section:
        return []
    return [r for s in section["servers"].values() for r in s.get("runs", [])]


def render(
    barge: dict[str, Any] | None, cpu: dict[str, Any] | None, labels: dict[str, str]
) -> list[str]:
    """The two comparisons as text lines (a small table each, then the target's line)."""
    lines: list[str] = []
    if barge:
        lines.append(
            f"\nsame N={barge['n']} (80% of callflow's capacity), barge-in (key → clearAudio):"
        )
        rows = [("server", "p50 ms", "p99 ms", "runs held", "gen-bound")]
        for name, s in barge["servers"].items():
            if s["beyond_capacity"]:
                rows.append((labels[name], f"beyond capacity ({s['capacity']})", "", "", ""))
                continue
            m = s["figures"]["median"]
            rows.append(
                (
                    labels[name],
                    _f(m.get("barge_in_p50_ms")),
                    _f(m.get("barge_in_p99_ms")),
                    f"{m['held_runs']}/{m['runs']}",
                    _bound(s["runs"]),
                )
            )
        lines += _table(rows)
        t = barge["target"]
        lines.append(
            f"  target callflow p99 ≤ node p99: {_f(t['callflow'])} vs {_f(t['node'])} ms "
            f"-> {'MET' if t['met'] else 'NOT MET'}"
        )
    if cpu:
        lines.append(f"\nserver CPU per call-minute at N={cpu['n']}:")
        rows = [("server", "s/call-min", "server cores", "runs held", "gen-bound")]
        for name, s in cpu["servers"].items():
            m = s["figures"]["median"]
            rows.append(
                (
                    labels[name],
                    _f(m.get("cpu_s_per_call_minute"), 4),
                    _f(m.get("server_cpu_cores"), 3),
                    f"{m['held_runs']}/{m['runs']}",
                    _bound(s["runs"]),
                )
            )
        lines += _table(rows)
        t = cpu["target"]
        ratio = "–" if t["ratio"] is None else f"{t['ratio']:.2f}×"
        lines.append(
            f"  target callflow ÷ node ≤ {t['limit_ratio']}×: {ratio} "
            f"-> {'MET' if t['met'] else 'NOT MET'}"
        )
    return lines


def _bound(runs: list[dict[str, Any]]) -> str:
    n = sum(1 for r in runs if r.get("generator_bound"))
    return f"{n} GENERATOR-BOUND" if n else "no"


def _f(value: float | None, places: int = 2) -> str:
    return "–" if value is None else f"{value:.{places}f}"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
