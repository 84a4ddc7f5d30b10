"""``python -m bench`` (what ``nox -s bench`` runs): see :mod:`bench.runner`."""

import sys

from bench.runner import main

sys.exit(main())
