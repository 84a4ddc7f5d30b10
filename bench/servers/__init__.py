"""Servers under test, each a script that prints ``listening on http://HOST:PORT`` when ready.

* :mod:`bench.servers.sdk_ivr`: the bench IVR written with the official ``plivo-stream-sdk``,
  served with ``websockets.serve`` as its README shows.
* :mod:`bench.servers.wsfast_ivr` ``--bare``: callflow's WebSocket layer
  (``callflow.server._wsfast`` and its shared read loop), ``json.loads`` of each message and
  nothing else: its ceiling. ``--no-read-loop``: the same layer with one reading task per
  connection (before the read loop). Without ``--bare``: callflow's runtime on it without
  the HTTP routes.
* :mod:`bench.servers.bare_trio_websocket`: the same ceiling for trio-websocket, the layer
  callflow's server used before ``_wsfast``.

``callflow serve bench/flows`` is the first column; it needs no script here.
"""
