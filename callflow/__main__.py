"""``python -m callflow``: the ``callflow`` command (see :mod:`callflow.cli`)."""

from callflow.cli import main

raise SystemExit(main())
