"""The health endpoint: ``GET /healthz`` → ``{"status": "ok", "calls": N, "flows": [paths]}``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from callflow._flow import Flow
from callflow.runtime import LiveCalls


class Health:
    """What the health routes answer, from the live-call registry and the flows served."""

    def __init__(self, flows: Sequence[Flow], live_calls: LiveCalls) -> None:
        self.flows = list(flows)
        self.live_calls = live_calls

    def respond(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for a GET of the health route at ``path``."""
        body = {
            "status": "ok",
            "calls": len(self.live_calls),
            "flows": [f.path for f in self.flows],
        }
        return 200, json.dumps(body).encode(), "application/json"
