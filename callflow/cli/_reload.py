"""``callflow serve --reload``: import the flow folder again when a file in it changes.

New calls get the new flows; a call already running finishes on the code it started with (it
holds its flow's function). A folder that fails to load keeps the flows loaded before, and
its error is logged once (again only when the error changes). Files are watched with
watchfiles, whose ``awatch`` runs on anyio and so on Trio.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio
import watchfiles

from callflow._flow import Flow
from callflow._loader import FlowLoadError, load_flows
from callflow.server import ServerInfo

log = logging.getLogger("callflow.cli")

WATCHED_SUFFIXES = (".py", ".wav")


def _watched(change: watchfiles.Change, path: str) -> bool:
    if "__pycache__" in path or Path(path).name.startswith("."):
        return False
    return path.endswith(WATCHED_SUFFIXES)


async def reload_on_change(
    folder: str | Path,
    replace: Callable[[Sequence[Flow]], None],
    *,
    debounce_ms: int = 200,
) -> None:
    """Watch ``folder`` (and its subfolders: helpers, prompts) and hand each new set of flows
    to ``replace`` until cancelled."""
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # its "N changes detected"
    last_error = ""
    async for changes in watchfiles.awatch(folder, watch_filter=_watched, debounce=debounce_ms):
        names = ", ".join(sorted({Path(p).name for _, p in changes}))
        try:
            flows = load_flows(folder)
            replace(flows)
        except (FlowLoadError, ValueError) as exc:
            if str(exc) != last_error:
                log.error("reload after %s changed: %s; still serving the flows before", names, exc)
                last_error = str(exc)
            continue
        last_error = ""
        log.info(
            "reloaded %d flow(s) from %s after %s changed: %s",
            len(flows),
            folder,
            names,
            ", ".join(f.path for f in flows),
        )


async def serve_with_reload(
    run: Callable[..., Awaitable[None]],
    folder: str | Path,
    *,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """``run`` (``serve_flows`` with its flows bound) plus :func:`reload_on_change` on
    ``folder`` while it serves; returns when the server does."""
    async with trio.open_nursery() as nursery:

        async def serve(task_status: trio.TaskStatus[ServerInfo]) -> None:
            await run(task_status=task_status, **options)
            nursery.cancel_scope.cancel()

        info: ServerInfo = await nursery.start(serve)
        assert info.replace_flows is not None
        nursery.start_soon(reload_on_change, folder, info.replace_flows)
        log.info("watching %s for changes (--reload)", folder)
        task_status.started(info)
