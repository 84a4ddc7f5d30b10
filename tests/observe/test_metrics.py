"""The metrics registry: every metric exported under its Prometheus name, readable by
prometheus-client's own parser, and summed over processes in multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from callflow.observe import METRICS, NO_FLOW, OUTCOMES, Metrics, render

#: The family names (as the parser reports them: counters without ``_total``) and types.
EXPECTED = {
    "callflow_calls_active": "gauge",
    "callflow_calls": "counter",
    "callflow_flow_exceptions": "counter",
    "callflow_protocol_errors": "counter",
    "callflow_reconnects": "counter",
    "callflow_reattaches": "counter",
    "callflow_detaches": "counter",
    "callflow_detaches_expired": "counter",
    "callflow_detach_gap_seconds": "histogram",
    "callflow_barge_in_latency_seconds": "histogram",
    "callflow_time_to_first_audio_seconds": "histogram",
    "callflow_answer_to_start_seconds": "histogram",
    "callflow_checkpoint_round_trip_seconds": "histogram",
    "callflow_log_lines_suppressed": "counter",
    "callflow_webhook_replays_refused": "counter",
    "callflow_connections_refused": "counter",
    "callflow_event_loop_stalls": "counter",
    "callflow_messages_dropped": "counter",
    "callflow_liveness_timeouts": "counter",
    "callflow_gc_pause_seconds": "histogram",
}


def _families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_every_metric_is_exported_with_its_type() -> None:
    body, content_type = render()
    assert content_type.startswith("text/plain")
    families = _families(body.decode())
    assert {name: families.get(name) for name in EXPECTED} == EXPECTED


def test_updates_show_in_the_exposition() -> None:
    m = Metrics(CollectorRegistry())
    m.calls_active.labels(flow="/ivr").inc()
    m.calls_total.labels(flow="/ivr", outcome="completed").inc(2)
    m.barge_in_latency_seconds.labels(flow="/ivr", trigger="dtmf").observe(0.003)
    text = render(m)[0].decode()
    assert _sample(text, "callflow_calls_active", flow="/ivr") == 1
    assert _sample(text, "callflow_calls_total", flow="/ivr", outcome="completed") == 2
    assert _sample(text, "callflow_barge_in_latency_seconds_bucket", flow="/ivr", le="0.005") == 1
    assert _sample(text, "callflow_barge_in_latency_seconds_bucket", flow="/ivr", le="0.0025") == 0


def test_label_constants() -> None:
    assert set(OUTCOMES) == {"completed", "hung_up", "flow_error", "drained", "refused"}
    assert NO_FLOW.isidentifier()
    # The process-wide registry is a Metrics like any other.
    assert isinstance(METRICS, Metrics)


_WORKER = """
import sys
from callflow.observe import METRICS
METRICS.calls_total.labels(flow="/ivr", outcome="completed").inc(int(sys.argv[1]))
METRICS.calls_active.labels(flow="/ivr").inc()
print("ok", flush=True)
sys.stdin.read()  # stay alive until the test has scraped
"""

_SCRAPE = """
from callflow.observe import render
print(render()[0].decode())
"""


def test_multiprocess_mode_sums_every_worker(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(n)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (2, 3)
    ]
    try:
        for w in workers:
            assert w.stdout is not None
            assert w.stdout.readline().strip() == "ok"
        out = subprocess.run(
            [sys.executable, "-c", _SCRAPE], env=env, capture_output=True, text=True, check=True
        ).stdout
    finally:
        for w in workers:
            w.communicate(timeout=10)
    assert _sample(out, "callflow_calls_total", flow="/ivr", outcome="completed") == 5
    assert _sample(out, "callflow_calls_active", flow="/ivr") == 2
