"""The health endpoints a load balancer or orchestrator probes.

* ``GET /readyz``: readiness. 200 while the server takes new calls, 503 from the moment a
  drain starts (so the load balancer sends new calls elsewhere).
* ``GET /livez``: liveness. 200 while the process serves HTTP at all, draining or not.
* ``GET /healthz``: an alias of ``/readyz`` (so a load balancer that only knows
  ``/healthz`` stops sending calls to a draining server).

Each answers JSON: ``{"status": "ok" | "draining", "ready": bool, "calls": N,
"flows": [answer paths], "worker": id, "pid": process id}`` (``worker`` is the worker's
index with ``--workers``, 0 otherwise; with several workers also ``"handoffs": {"sent": N,
"received": N}``, the connections this worker passed to their call's owner and took over).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callflow._flow import Flow
from callflow.runtime import LiveCalls
from callflow.server._drain import Drain

if TYPE_CHECKING:
    from callflow.server._handoff import Handoff

READY_PATH = "/readyz"
LIVE_PATH = "/livez"
HEALTH_PATH = "/healthz"
HEALTH_PATHS = (HEALTH_PATH, READY_PATH, LIVE_PATH)


class Health:
    """What the health routes answer, from the live-call registry, the flows served and the
    drain state."""

    def __init__(
        self,
        flows: Sequence[Flow],
        live_calls: LiveCalls,
        drain: Drain,
        worker: int = 0,
        handoff: Handoff | None = None,
    ) -> None:
        self.handoff = handoff
        self.flows = list(flows)
        self.live_calls = live_calls
        self.drain = drain
        self.worker = worker

    def respond(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for a GET of the health route at ``path``."""
        ready = not self.drain.draining
        body: dict[str, object] = {
            "status": "ok" if ready else "draining",
            "ready": ready,
            "calls": len(self.live_calls),
            "flows": [f.path for f in self.flows],
            "worker": self.worker,
            "pid": os.getpid(),
        }
        if self.handoff is not None:
            body["handoffs"] = {"sent": self.handoff.handed_off, "received": self.handoff.received}
        status = 200 if ready or path == LIVE_PATH else 503
        return status, json.dumps(body).encode(), "application/json"
