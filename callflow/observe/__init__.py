"""Observability: Prometheus metrics, structured logs, safe logging of outside values.

The bottom layer (imports only ``prometheus_client`` and the standard library); the runtime
and the server import it, never the reverse.
"""

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
    "METRICS",
    "MULTIPROC_ENV",
    "NO_FLOW",
    "OUTCOMES",
    "Metrics",
    "mark_worker_dead",
    "multiprocess_dir",
    "render",
]
