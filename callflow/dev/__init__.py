"""The dev phone: ``callflow serve --dev`` serves a page at ``/dev`` that calls a flow the
way Plivo does, from the browser.

The page POSTs the flow's answer URL, reads the ``<Stream>`` URL (with its token) from the
XML, opens that same stream WebSocket a real call uses, and speaks Plivo's stream protocol
itself (``docs/protocol.md``): ``start``, 20 ms ``media`` frames from the microphone (G.711
μ-law or L16, encoded in the page; silence without one), ``dtmf`` from its keypad, prompts
played through the speaker, ``playedStream`` acks once the audio before a checkpoint has
played, ``clearAudio`` obeyed with ``clearedAudio``. An event log beside the keypad shows
every message. Never served without ``--dev``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.resources import files

from callflow._flow import Flow

DEV_PATH = "/dev"
"""Where the dev phone is served."""


def dev_page(flows: Sequence[Flow]) -> bytes:
    """The dev phone's HTML, listing ``flows`` (path and audio format) to call."""
    listed = [
        {
            "path": f.path,
            "contentType": f.format.content_type,
            "encoding": f.format.encoding,
            "sampleRate": f.format.sample_rate,
        }
        for f in flows
    ]
    html = files("callflow.dev").joinpath("phone.html").read_text(encoding="utf-8")
    data = json.dumps(listed).replace("<", "\\u003c")  # never closes the <script>
    return html.replace("/*FLOWS*/[]", data).encode()


def dev_pages(flows: Sequence[Flow]) -> dict[str, tuple[bytes, str]]:
    """``serve_flows(pages=…)`` for the dev phone."""
    return {DEV_PATH: (dev_page(flows), "text/html; charset=utf-8")}
