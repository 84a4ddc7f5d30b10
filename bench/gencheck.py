"""How far each load generator holds, and whether two generators measure the same thing.

``ceiling``: one load run per generator and N against one server (pinned as in ``nox -s
bench``: server on CPU 0, generator on CPU 1), printing the generator's own core share, its
pacer's p99 lateness and whether the run would be flagged GENERATOR-BOUND (above
``loadrun.GENERATOR_LIMIT`` of its core, or a pacer p99 above ``loadrun.PACER_LIMIT_MS``)::

    python -m bench.gencheck ceiling --server bare --ns 500,1000,1500,2000 --generators c,node

``diff``: the same N against the same server with each generator (same seed), side by side:
the verdict, the latencies, the counts of keys and barge-ins, the errors::

    python -m bench.gencheck diff --server callflow --n 50

Both write their runs as JSON under ``bench/results/`` (``gencheck-*.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
from collections.abc import Sequence
from typing import Any

from bench import catalog, generators, loadrun

COLUMNS = (
    ("generator", lambda r: r.get("generator_kind")),
    ("N", lambda r: r["calls"]),
    ("gen core", lambda r: f"{r['generator_cores']:.2f}"),
    ("gen sys", lambda r: f"{r['generator_sys_cpu_window_s'] / max(r['window_s'], 1e-9):.2f}"),
    ("pacer p99 ms", lambda r: r["pacer_late_ms"]["p99"]),
    ("GEN-BOUND", lambda r: "yes" if r["generator_bound"] else "no"),
    ("held", lambda r: "yes" if r["held"] else "no"),
    ("lag p99 ms", lambda r: r["lag_ms"]["p99"]),
    (
        "server core",
        lambda r: f"{(r.get('server') or {}).get('cpu_window_s', 0) / r['window_s']:.2f}",
    ),
    ("barge n", lambda r: r["barge_in_ms"]["count"]),
    ("barge p50", lambda r: r["barge_in_ms"]["p50"]),
    ("barge p99", lambda r: r["barge_in_ms"]["p99"]),
    ("keys n", lambda r: r["key_lag_ms"]["count"]),
    ("key→audio n", lambda r: r["key_to_audio_ms"]["count"]),
    ("ttfa p50", lambda r: r["ttfa_ms"]["p50"]),
    ("ttfa p99", lambda r: r["ttfa_ms"]["p99"]),
    ("errors", lambda r: sum(r["errors"].values())),
    ("blocked", lambda r: r["blocked_sends"]),
)


def render(runs: Sequence[dict[str, Any]]) -> str:
    """The runs as a text table (one row a run)."""
    heads = [name for name, _ in COLUMNS]
    rows = [[str(get(r)) for _, get in COLUMNS] for r in runs]
    widths = [max(len(x[i]) for x in [heads, *rows]) for i in range(len(heads))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in [heads, *rows]
    )


def one(
    server: str, n: int, kind: str, settings: loadrun.Settings, window_s: float
) -> dict[str, Any]:
    """One steady load run of generator ``kind`` at ``n`` calls."""
    settings.generator = kind
    r = loadrun.steady_run(
        catalog.SERVERS[server], n, settings, window_s=window_s, ramp_rate=200.0, seed=1
    )
    r["generator_kind"] = kind
    print(f"  {kind} N={n}: {loadrun._describe(r)}", flush=True)
    return r


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gencheck", description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["ceiling", "diff"])
    p.add_argument("--server", default="bare", help=f"one of {', '.join(catalog.SERVERS)}")
    p.add_argument("--ns", default="500,1000,1500,2000", help="ceiling: the Ns")
    p.add_argument("--n", type=int, default=50, help="diff: the N")
    p.add_argument("--generators", default="c,node", help="comma-separated, from c, node, python")
    p.add_argument("--window-s", type=float, default=5.0)
    args = p.parse_args(argv)
    kinds = [generators.resolve(k.strip(), print) for k in args.generators.split(",")]
    ns = [int(x) for x in args.ns.split(",")] if args.what == "ceiling" else [args.n]
    settings = loadrun.Settings(settle_s=1.0)
    catalog.RESULTS.mkdir(parents=True, exist_ok=True)
    catalog.write_prompts()
    runs = []
    for n in ns:
        for kind in kinds:
            try:
                runs.append(one(args.server, n, kind, settings, args.window_s))
            except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
                print(f"  {kind} N={n}: the generator did not finish ({exc.__class__.__name__})")
    print(f"\n{args.what} against {args.server} ({catalog.SERVERS[args.server].label}):")
    print(render(runs))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = catalog.RESULTS / f"gencheck-{args.what}-{stamp}.json"
    path.write_text(json.dumps({"server": args.server, "runs": runs}, indent=1) + "\n")
    print(f"JSON: {path.relative_to(catalog.ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
