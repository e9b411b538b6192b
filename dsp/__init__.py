"""Streaming signal processing for crampwatch: pure computation, no I/O, no clocks, no threads."""

__version__ = "0.1.0"
