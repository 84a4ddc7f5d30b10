"""Observability: Prometheus metrics, structured logs, safe logging of outside values.

The bottom layer (imports only ``prometheus_client`` and the standard library); the runtime
and the server import it, never the reverse.
"""

from callflow.observe._logsafe import (
    MAX_ESCAPED_CHARS,
    MAX_LINE_CHARS,
    MAX_VALUE_CHARS,
    WarningLimiter,
    escape,
    quote,
)
from callflow.observe._metrics import (
    METRICS,
    MULTIPROC_ENV,
    NO_FLOW,
    OUTCOMES,
    Metrics,
    mark_worker_dead,
    multiprocess_dir,
    render,
)

__all__ = [
    "MAX_ESCAPED_CHARS",
    "MAX_LINE_CHARS",
    "MAX_VALUE_CHARS",
    "METRICS",
    "MULTIPROC_ENV",
    "NO_FLOW",
    "OUTCOMES",
    "Metrics",
    "WarningLimiter",
    "escape",
    "mark_worker_dead",
    "multiprocess_dir",
    "quote",
    "render",
]
