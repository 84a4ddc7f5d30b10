"""``callflow serve bench/flows`` with CPython's default collector thresholds (700, 10, 10)
instead of :data:`callflow.cli.GC_THRESHOLDS`: the other side of that setting's A/B.

    python -m bench.servers.callflow_gc_default --port 0
"""

from __future__ import annotations

import gc
import sys

from callflow import cli


def main() -> None:
    cli.GC_THRESHOLDS = gc.get_threshold()  # the process's defaults
    sys.exit(cli.main(["serve", "bench/flows", *sys.argv[1:], "--log-level", "warning"]))


if __name__ == "__main__":
    main()
