"""Repeated conditions in the log: the first line, then a count per interval (hardware/log_coalescing)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from hardware.log_coalescing import Coalescer, repeated


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, Coalescer, Clock]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    clock = Clock()
    coalescer = Coalescer(handler, interval_s=60.0, clock=clock)
    handler.addFilter(coalescer)
    logger = logging.getLogger("tests.coalescing")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger, stream, coalescer, clock
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_the_first_line_passes_and_repeats_become_one_count_per_interval(logged) -> None:
    logger, stream, _, clock = logged
    for second in range(0, 150):  # a re-send every second for two and a half minutes
        clock.now = float(second)
        logger.warning("re-sending after %d ms", second, extra=repeated("resend"))
    assert lines(stream) == [
        "WARNING re-sending after 0 ms",
        "WARNING re-sending after 60 ms (and 59 more like this in the last 60 s)",
        "WARNING re-sending after 120 ms (and 59 more like this in the last 60 s)",
    ]


def test_a_condition_that_stops_gets_its_count_when_its_interval_is_over(logged) -> None:
    logger, stream, coalescer, clock = logged
    for second in range(5):
        clock.now = float(second)
        logger.warning("broker unreachable", extra=repeated("broker"))
    clock.now = 30.0
    coalescer.flush_due()  # the interval is not over: nothing yet
    assert lines(stream) == ["WARNING broker unreachable"]
    clock.now = 61.0
    coalescer.flush_due()
    assert lines(stream)[1:] == [
        "WARNING broker unreachable (and 3 more like this in the last 61 s)"
    ]
    clock.now = 200.0
    coalescer.flush_due()  # a quiet interval: forgotten, so the next one is a first again
    logger.warning("broker unreachable", extra=repeated("broker"))
    assert lines(stream)[2:] == ["WARNING broker unreachable"]


def test_flushing_everything_at_the_end_sends_what_is_held(logged) -> None:
    logger, stream, coalescer, clock = logged
    logger.info("left: signal lost", extra=repeated("signal left"))
    clock.now = 1.0
    logger.info("left: signal back", extra=repeated("signal left"))
    coalescer.flush_due(everything=True)
    assert lines(stream) == ["INFO left: signal lost", "INFO left: signal back"]


def test_keys_are_separate_and_untagged_lines_pass(logged) -> None:
    logger, stream, _, _ = logged
    for _ in range(3):
        logger.warning("left lost", extra=repeated("signal left"))
        logger.warning("right lost", extra=repeated("signal right"))
        logger.warning("plain")
    assert lines(stream) == [
        "WARNING left lost",
        "WARNING right lost",
        "WARNING plain",
        "WARNING plain",
        "WARNING plain",
    ]
