"""The figures of a set of runs (medians), and the side-by-side table the bench prints.

:func:`figures` reduces the runs of one server at one N to the medians of each figure;
:func:`build_table` and :func:`render_table` put the servers side by side, with callflow's
ratios to each other column (:data:`RATIOS`, and the ``--reference`` pairs of
:data:`bench.catalog.RATIOS_EXTRA`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench.catalog import RATIOS_EXTRA, SERVERS

__all__ = ["RATIOS", "ROWS", "build_table", "figures", "render_table"]


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
