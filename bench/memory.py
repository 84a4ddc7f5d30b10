"""What a parked call holds: ``tracemalloc`` over the real server and N idle calls.

    python -m bench.memory --calls 200
    python -m bench.memory --calls 40 --ended

One process runs ``serve_flows`` on the bench IVR (127.0.0.1, a free port) and, on the same
trio loop, N of :mod:`bench.loadgen`'s simulated Plivo calls: each sends ``start`` and 20 ms
media, hears its first prompt to the end and then presses nothing, so every flow parks in
``wait_dtmf`` (an *idle call*: start sent, media flowing, first prompt played, waiting for a
key). Tracing starts after a warm-up call (imports, caches), just before the N calls dial in; one
snapshot once they are idle holds what they allocated and still keep. Allocations whose
traceback passes through the load generator are left out, so what remains is the server's.
Prints the bytes per idle call and the allocation sites that hold the most, grouped by the
innermost frame inside callflow (or the library frame when there is none). The snapshot is
taken after a collection; one taken just before it tells how much of the idle calls' memory
was only waiting for the collector (reference cycles: resident, in the bench's RSS figure,
until a collection runs, which under ``callflow serve``'s young threshold may be a while).

``--ended``: the calls then hang up, with the collector off, and what their ends left that only
the collector can free (reference cycles: ``gc.DEBUG_SAVEALL`` keeps what one collection finds)
is counted per ended call, by type and by allocation site. Objects in such cycles are what a
``gc.freeze()`` after each call's start would keep for ever, and what the young collections
after a burst of call ends walk.

The bench's resident-memory figure (``rss_per_idle_call_kib`` in ``nox -s bench``) is measured
from outside, as RSS; this is the tool to find what makes it.
"""

from __future__ import annotations

import argparse
import functools
import gc
import linecache
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from bench import loadgen

ROOT = Path(__file__).resolve().parent.parent


def _label(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame inside callflow of an allocation, or its innermost frame.
    (tracemalloc orders a traceback from the oldest frame to the most recent.)"""
    frames = list(reversed(traceback))
    for frame in frames:
        if "/callflow/" in frame.filename and "/bench/" not in frame.filename:
            line = linecache.getline(frame.filename, frame.lineno).strip()
            short = frame.filename.split("/callflow/", 1)[1]
            return f"callflow/{short}:{frame.lineno}  {line[:70]}"
    f = frames[0]
    return f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno}"


async def _main(calls: int, top: int, frames: int, show: str = "", *, ended: bool = False) -> None:
    from bench import loadgen
    from callflow import load_flows
    from callflow.server import serve_flows

    flows = load_flows(ROOT / "bench" / "flows")
    async with trio.open_nursery() as nursery:
        info = await nursery.start(
            functools.partial(
                serve_flows, flows, host="127.0.0.1", port=0, loop_stall_threshold=60.0
            )
        )
        args = loadgen._parser().parse_args(
            ["--url", f"ws://127.0.0.1:{info.port}/ivr/stream", "--calls", str(calls)]
        )
        args.barge_fraction = 0.0
        gen = loadgen.Generator(args)
        gen.keys_enabled = False
        gen.nursery = nursery
        nursery.start_soon(gen.pacer)
        # warm-up: one call through the whole path (imports, caches, code paths)
        warm = await loadgen._ramp(gen, nursery, 3, 50.0, measured=False)
        await loadgen._wait_all(warm)
        await trio.sleep(5.0)
        await loadgen._hang_up_all(list(gen.calls), 5)
        gen.calls.clear()
        await trio.sleep(1.0)
        gc.collect()
        tracemalloc.start(frames)  # from here on: what the idle calls allocate and keep
        events = await loadgen._ramp(gen, nursery, calls, 200.0, measured=False)
        await loadgen._wait_all(events)
        await trio.sleep(5.0)  # every first prompt (3 s) has played; every flow waits for a key
        uncollected = tracemalloc.take_snapshot()  # (what RSS sees until a collection runs)
        gc.collect()
        after = tracemalloc.take_snapshot()
        live = sum(1 for c in gen.calls if not c.closed.is_set())
        not_generator = [tracemalloc.Filter(False, "*/bench/loadgen.py", all_frames=True)]
        garbage = _held(uncollected, not_generator) - _held(after, not_generator)
        print(
            f"in reference cycles, freed only by the collector: {garbage} bytes "
            f"({garbage / max(1, live):.0f} per call; resident until a collection runs)"
        )
        if not ended:
            tracemalloc.stop()
        stats = after.filter_traces(not_generator).statistics("traceback")
        sites: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        for stat in stats:
            label = _label(stat.traceback)
            sites[label] += stat.size
            counts[label] += stat.count
        total = sum(sites.values())
        print(f"idle calls: {live}; server-side bytes held: {total} ({total / live:.0f} per call)")
        print(f"{'bytes/call':>10}  {'allocs/call':>11}  site")
        for stat in stats if show else ():  # --show: whole tracebacks of the matching sites
            if show in _label(stat.traceback):
                print(f"{stat.size / live:10.0f}  {stat.count / live:11.1f}")
                print("\n".join(stat.traceback.format()[-16:]))
        for label, size in sites.most_common(top):
            print(f"{size / live:10.0f}  {counts[label] / live:11.1f}  {label}")
        if ended:
            await _ended(gen, live, top)
        await loadgen._hang_up_all(gen.calls, 5)
        nursery.cancel_scope.cancel()


def _held(snapshot: tracemalloc.Snapshot, filters: list[tracemalloc.Filter]) -> int:
    """Bytes the snapshot's traces hold, through ``filters``."""
    return sum(stat.size for stat in snapshot.filter_traces(filters).statistics("filename"))


async def _ended(gen: loadgen.Generator, live: int, top: int) -> None:
    """Hang up every call with the collector off; print what one collection then finds
    unreachable (reference cycles), per ended call, by type and by allocation site. Stops
    the tracing :func:`_main` started. An object with no traceback was allocated before it,
    or taken from one of CPython's free lists (lists, tuples, dicts), which tracemalloc does
    not see."""
    from bench import loadgen

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await loadgen._hang_up_all(list(gen.calls), 5)
        await trio.sleep(3.0)  # every call's teardown has run
        found = gc.collect()
        types: Counter[str] = Counter()
        sites: Counter[str] = Counter()
        for obj in gc.garbage:
            traceback = tracemalloc.get_object_traceback(obj)
            if traceback is not None and any("/bench/loadgen.py" in f.filename for f in traceback):
                continue  # the load generator's side of the calls
            types[type(obj).__qualname__] += 1
            sites[_label(traceback) if traceback is not None else "(no traceback)"] += 1
        server, per = sum(types.values()), max(live, 1)
        print(
            f"\nended calls: {live}; unreachable objects a collection found: {found}, "
            f"{server} of them the server's ({server / per:.1f} per ended call)"
        )
        print(f"{'per call':>8}  type")
        for name, count in types.most_common(top):
            print(f"{count / per:8.1f}  {name}")
        print(f"{'per call':>8}  allocation site")
        for label, count in sites.most_common(top):
            print(f"{count / per:8.1f}  {label}")
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--frames", type=int, default=30, help="traceback depth kept per allocation")
    p.add_argument(
        "--show", default="", help="print the whole tracebacks of the sites whose label has this"
    )
    p.add_argument(
        "--ended",
        action="store_true",
        help="then hang the calls up and count the reference cycles their ends leave",
    )
    args = p.parse_args(argv)
    trio.run(
        functools.partial(_main, ended=args.ended), args.calls, args.top, args.frames, args.show
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
