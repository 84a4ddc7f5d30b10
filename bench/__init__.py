"""callflow's benchmarks: ``nox -s bench`` (see ``docs/performance.md``).

* :mod:`bench.__main__`: the one command: capacity search, fixed-load runs, table, JSON.
* :mod:`bench.loadgen`: the load generator, a process of its own (N simulated Plivo calls).
* :mod:`bench.servers`: the servers under test besides ``callflow serve bench/flows``.
* ``bench/flows/ivr.py``: the IVR flow ``callflow serve`` runs.
* :mod:`bench.micro`: micro-benchmarks of codecs, parse/encode and the prompt cache.
* :mod:`bench.profile`: a py-spy profile of ``callflow serve`` under load.
"""
