"""Benchmarks of crampwatch: replay speed and memory on an 8-hour night, a bare scipy floor, peers.

Run ``python -m benchmarks`` (or ``./run.sh bench``, which also installs the peers NeuroKit2 and
BioSPPy).
Every measurement runs in its own subprocess, so that its peak resident set size is its own. The
synthetic night is written once to a cache file (``$XDG_CACHE_HOME/crampwatch-bench``, or
``$CRAMPWATCH_BENCH_CACHE``) and reused while its parameters and the generator stay the same.
"""
