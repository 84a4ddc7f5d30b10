"""Observability: Prometheus metrics, structured logs, safe logging of outside values.

The bottom layer (imports only ``prometheus_client`` and the standard library); the runtime
and the server import it, never the reverse.
"""

from callflow.observe._gcpause import flush_gc, watch_gc
from callflow.observe._logjson import (
    CALL_CONTEXT,
    CallLogContext,
    JsonFormatter,
    bind_call,
)
from callflow.observe._logsafe import (
    MAX_CALL_ID_CHARS,
    MAX_ESCAPED_CHARS,
    MAX_LINE_CHARS,
    MAX_VALUE_CHARS,
    WarningLimiter,
    call_label,
    escape,
    quote,
)
from callflow.observe._metrics import (
    METRICS,
    MULTIPROC_ENV,
    NO_FLOW,
    OUTCOMES,
    FlowMetrics,
    Metrics,
    mark_worker_dead,
    multiprocess_dir,
    render,
)

__all__ = [
    "CALL_CONTEXT",
    "MAX_CALL_ID_CHARS",
    "MAX_ESCAPED_CHARS",
    "MAX_LINE_CHARS",
    "MAX_VALUE_CHARS",
    "METRICS",
    "MULTIPROC_ENV",
    "NO_FLOW",
    "OUTCOMES",
    "CallLogContext",
    "FlowMetrics",
    "JsonFormatter",
    "Metrics",
    "WarningLimiter",
    "bind_call",
    "call_label",
    "escape",
    "flush_gc",
    "mark_worker_dead",
    "multiprocess_dir",
    "quote",
    "render",
    "watch_gc",
]
