"""A converter loop in an acquisition process of its own, read through a shared-memory ring.

The daemon's pipeline, MQTT link, SQLite outbox and night recorder all run in the main process;
none of them can hold up a converter that runs in another one. `ProcessSource` is the same
`AcquisitionSource` the daemon reads from any source: `open()` starts the acquisition process
(`python -m hardware.acquisition_process`: a fresh interpreter that inherits nothing but two pipes
and a picklable recipe on its standard input), which builds the converter there (`build()`,
returning a `ThreadedSource`: a real driver with its bus, or a simulated chip and the real driver
talking to it at the bus) and answers with its channels and rate; this side then makes the ring
and tells the child its name; `start()` lets it run; `read_block()` returns the rows in order
(NaN where missing, each row's conversion time, gaps where rows were dropped).

- Ring: `hardware.sample_ring.SampleRing`, `ring_s` seconds of frames at the nominal rate (60 s:
  1.9 MB at 1 kHz x 2 channels; times the speed of a sped-up simulation, at most 64 MB). Each row is written when its conversion is done; blocks are
  published at least every `publish_s` of clock time (20 ms).
- Overrun (the reader `ring_s` behind, on a real-time clock): the rows that do not fit are not
  written. Their slots become a gap the reader sees, counted as `overruns` / `dropped_frames`
  and logged (coalesced). On a virtual clock the process waits for room instead: nothing is late
  in virtual time, so nothing is lost.
- Signals between the processes go through two pipes. Child to parent, framed messages written
  without blocking: "rows up to N are written" (the reader reads only what was announced, which
  also orders the shared-memory writes before the reads), log records (re-emitted in the parent,
  so every line gets its time, level and the parent's coalescing), and at the end the final
  count, counters and CPU time, or the error with its traceback. Parent to child: the ring's
  name, "go", "stop"; end of file (the parent died) also stops it.
- Lifetime: the child dies with its parent (PR_SET_PDEATHSIG SIGKILL, and the pipe's end of file),
  ignores SIGINT (Ctrl-C is the parent's to handle), takes SIGTERM as "stop". `close()` asks it to
  stop, waits for it, and removes the shared memory (after a SIGKILL of the parent, the resource
  tracker does). An error in the child (building the converter, or during acquisition) is raised
  in the parent: the same exception before the start, `AcquisitionError` after.
- Priority: with `realtime_priority`, the child asks for SCHED_FIFO at that priority (allowed for
  root, CAP_SYS_NICE or a LimitRTPRIO in the service) and runs at normal priority otherwise; the
  outcome is logged. Its timer slack is set to 1 us, so sleeps end on time.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hardware.acquisition import (
    AcquisitionError,
    AcquisitionSource,
    RateEstimator,
    SampleBlock,
    ThreadedSource,
)
from hardware.clock import Clock, is_real_time
from hardware.log_coalescing import COALESCE, repeated
from hardware.sample_ring import SampleRing

log = logging.getLogger(__name__)

READY, ROWS, LOG, END, FAILED = range(1, 6)
_FRAME = struct.Struct("<BI")  # kind, payload length
_ROWS = struct.Struct("<q")
PIPE_ATOMIC = 4096  # writes up to PIPE_BUF bytes are all or nothing
START, STOP, RING = b"g", b"q", b"r"
DEFAULT_RING_S = 60.0
PUBLISH_S = 0.02
VIRTUAL_BLOCK_FRAMES = 2048
MAX_READ_ROWS = 16384
MIN_RING_ROWS = 4096
MAX_RING_BYTES = 64 << 20
_PR_SET_PDEATHSIG, _PR_SET_TIMERSLACK = 1, 29


@dataclass(frozen=True)
class ChildOptions:
    """What the acquisition process needs besides the converter."""

    parent_pid: int
    log_level: int
    ring_s: float
    realtime_priority: int | None


@dataclass
class ChildReport:
    """What the acquisition process said about itself (filled in as it speaks)."""

    priority: str = ""
    pid: int | None = None
    cpu_s: float | None = None  # user + system CPU time, at the end
    wall_s: float | None = None
    exit_code: int | None = None
    log_lines_dropped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ProcessSource(AcquisitionSource):
    """A `ThreadedSource` built and run in an acquisition process; see the module doc.

    `clock`: the clock the converter runs on (a copy goes to the child: a system or scaled clock
    agrees across processes; a virtual one is advanced here as rows arrive, so readers of
    `self.clock` in this process follow the acquisition's time)."""

    def __init__(
        self,
        build: Callable[[], ThreadedSource],
        *,
        clock: Clock,
        ring_s: float = DEFAULT_RING_S,
        realtime_priority: int | None = None,
        start_timeout_s: float = 120.0,
    ) -> None:
        super().__init__()
        self.channels = ()
        self.nominal_fs = 0.0
        self.units = "V"
        self.clock = clock
        self.report = ChildReport()
        self.rate = RateEstimator(1.0)
        self._build = build
        self._ring_s = ring_s
        self._realtime_priority = realtime_priority
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._from_child = -1
        self._to_child = -1
        self._buffer = bytearray()
        self._ready: dict[str, Any] | None = None
        self._announced = 0
        self._final: dict[str, Any] | None = None
        self._failure: BaseException | None = None
        self._child_gone = False
        self._ended = False
        self._runs: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()
        self._next_index = 0  # index after the last row given out
        self._ring: SampleRing | None = None
        self._t_last = 0.0

    # ---- the interface --------------------------------------------------------------------------

    def open(self) -> None:
        if self._process is not None:
            return
        from_child, child_out = os.pipe()
        child_in, to_child = os.pipe()
        options = ChildOptions(
            os.getpid(), _forwarded_level(), self._ring_s, self._realtime_priority
        )
        bootstrap = pickle.dumps((options, child_out, child_in, pickle.dumps(self._build)))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "hardware.acquisition_process"],
                stdin=subprocess.PIPE,
                pass_fds=(child_out, child_in),
                env=_child_environment(),
            )
        finally:
            os.close(child_out)
            os.close(child_in)
        self._from_child, self._to_child = from_child, to_child
        self.report.pid = self._process.pid
        try:
            assert self._process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.write(bootstrap)
                self._process.stdin.close()
            self._await_ready()
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        if self._ready is None:
            self.open()
        self._tell(START)

    def read_block(self, timeout: float | None = None) -> SampleBlock | None:
        if self._ended:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._runs or self._announced > self._require_ring().consumed:
                return self._next_block()
            if self._final is not None or self._child_gone:
                return self._dropped_tail() or self._end()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no samples from the acquisition process in {timeout} s")
            self._pump(remaining)

    def stop(self) -> None:
        self._tell(STOP)

    def cpu_s(self) -> float | None:
        """CPU time (user + system) the acquisition process has used so far (from /proc)."""
        if self._process is None or self.report.pid is None:
            return self.report.cpu_s
        try:
            with open(f"/proc/{self.report.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return self.report.cpu_s
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop the process, wait for it (then insist), remove the shared memory."""
        if self._process is None:
            return
        self.stop()
        deadline = time.monotonic() + 10.0
        while not self._child_gone and time.monotonic() < deadline:
            self._pump(max(0.0, deadline - time.monotonic()))
        process = self._process
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("the acquisition process did not stop: terminating it")
            process.terminate()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=2.0)
        self.report.exit_code = process.returncode
        if self._ring is not None:
            self._ring.close()
            with contextlib.suppress(FileNotFoundError):
                self._ring.unlink()
            self._ring = None
        for fd in (self._from_child, self._to_child):
            if fd >= 0:
                os.close(fd)
        self._from_child = self._to_child = -1
        self._process = None

    # ---- reading rows ---------------------------------------------------------------------------

    def _require_ring(self) -> SampleRing:
        if self._ring is None:
            raise RuntimeError("open() the source before reading")
        return self._ring

    def _next_block(self) -> SampleBlock:
        if not self._runs:
            ring = self._require_ring()
            index, times, samples = ring.read(self._announced, MAX_READ_ROWS)
            breaks = np.flatnonzero(np.diff(index) != 1) + 1
            for lo, hi in zip([0, *breaks], [*breaks, len(index)], strict=True):
                self._runs.append((index[lo:hi], times[lo:hi], samples[lo:hi]))
            self.stats = ring.stats()
        index, times, samples = self._runs.popleft()
        self._next_index = int(index[-1]) + 1
        timed = np.flatnonzero(np.isfinite(times))
        t_first = float(times[timed[0]]) if len(timed) else self._t_last
        if len(timed):
            self._t_last = float(times[timed[-1]])
            self.rate.add(int(index[timed[0]]), t_first)
            self.rate.add(int(index[timed[-1]]), self._t_last)
            self._follow_clock(self._t_last)
        return SampleBlock(samples, int(index[0]), t_first, self._t_last, self.rate.fs, times)

    def _dropped_tail(self) -> SampleBlock | None:
        """Rows dropped at the very end (no later row shows their gap): NaN rows, once."""
        stats = (self._final or {}).get("stats")
        frames = stats.frames if stats is not None else self._next_index
        if frames <= self._next_index:
            return None
        n, first = frames - self._next_index, self._next_index
        self._next_index = frames
        self.stats = stats
        return SampleBlock(
            np.full((n, len(self.channels)), np.nan),
            first,
            self._t_last,
            self._t_last,
            self.rate.fs,
            np.full(n, np.nan),
        )

    def _follow_clock(self, t: float) -> None:
        if not is_real_time(self.clock):
            ahead = t - self.clock.monotonic()
            if ahead > 0:
                self.clock.sleep(ahead)

    def _end(self) -> None:
        self._ended = True
        final = self._final or {}
        if "stats" in final:
            self.stats = final["stats"]
        if self._failure is not None:
            raise AcquisitionError(str(self._failure)) from self._failure
        if self._final is None:
            code = self._process.poll() if self._process is not None else None
            raise AcquisitionError(
                f"the acquisition process ended without a word (exit code {code})"
            )
        return None

    # ---- messages from the child ----------------------------------------------------------------

    def _await_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        while self._ready is None:
            if self._failure is not None:
                raise self._failure
            if self._child_gone:
                code = self._process.wait() if self._process else None
                raise AcquisitionError(
                    f"the acquisition process ended before it was ready (exit code {code})"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AcquisitionError(
                    f"the acquisition process was not ready in {self._start_timeout_s:.0f} s"
                )
            self._pump(remaining)
        ready = self._ready
        self.channels = tuple(ready["channels"])
        self.nominal_fs = float(ready["nominal_fs"])
        self.units = str(ready["units"])
        self.rate = RateEstimator(self.nominal_fs)
        self.report.priority = str(ready["priority"])
        self._ring = SampleRing.create(len(self.channels), self._capacity())
        self._tell(RING + f"{self._ring.name} {self._ring.capacity}\n".encode())

    def _capacity(self) -> int:
        """Rows for `ring_s` seconds of real time (a simulation sped up makes more rows per
        second), within [MIN_RING_ROWS, MAX_RING_BYTES]."""
        speed = float(getattr(self.clock, "speed", 1.0))
        rows = math.ceil(self._ring_s * self.nominal_fs * max(1.0, speed))
        most = MAX_RING_BYTES // SampleRing.nbytes(len(self.channels), 1)
        return max(MIN_RING_ROWS, min(rows, most))

    def _pump(self, timeout: float | None) -> None:
        """Wait up to `timeout` for messages from the child and handle them."""
        if self._child_gone:
            return
        readable, _, _ = select.select([self._from_child], [], [], timeout)
        if not readable:
            return
        try:
            data = os.read(self._from_child, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self._child_gone = True
            return
        self._buffer += data
        while len(self._buffer) >= _FRAME.size:
            kind, length = _FRAME.unpack_from(self._buffer)
            end = _FRAME.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_FRAME.size : end])
            del self._buffer[:end]
            self._handle(kind, payload)

    def _handle(self, kind: int, payload: bytes) -> None:
        if kind == ROWS:
            (written,) = _ROWS.unpack(payload)
            self._announced = max(self._announced, written)
            return
        message = pickle.loads(payload)
        if kind == LOG:
            _reemit(message)
        elif kind == READY:
            self._ready = message
        elif kind in (END, FAILED):
            self._final = message
            self._announced = max(self._announced, int(message.get("written", 0)))
            self.report.cpu_s = message.get("cpu_s")
            self.report.wall_s = message.get("wall_s")
            self.report.log_lines_dropped = int(message.get("log_lines_dropped", 0))
            self.report.extra = dict(message.get("extra", {}))
            if kind == FAILED:
                self._failure = _exception(message)
                if message.get("traceback"):
                    log.debug("acquisition process traceback:\n%s", message["traceback"])

    def _tell(self, what: bytes) -> None:
        if self._to_child < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self._to_child, what)


def _exception(message: dict[str, Any]) -> BaseException:
    """The child's exception, or an AcquisitionError with its text if it did not travel."""
    error = message.get("error")
    if isinstance(error, BaseException):
        return error
    return AcquisitionError(str(message.get("text", "the acquisition process failed")))


def _child_environment() -> dict[str, str]:
    """This process's environment, with its import path (so the child finds the same modules)."""
    env = dict(os.environ)
    paths = [path or os.getcwd() for path in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _forwarded_level() -> int:
    """The most detailed level this process logs for crampwatch or its hardware modules."""
    levels = [logging.getLogger(name).getEffectiveLevel() for name in ("crampwatch", "hardware")]
    return min(levels)


def _reemit(message: dict[str, Any]) -> None:
    """A log record from the child, through this process's handlers (time, level, coalescing)."""
    record = logging.makeLogRecord(message)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


# ---- the acquisition process -------------------------------------------------------------------


class _ToParent:
    """Framed messages to the parent over a pipe, written without blocking where losing one is
    harmless (a row announcement is repeated by the next; a log line is counted), and in full
    where it is not (ready, end)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.lock = threading.Lock()
        self.unannounced: int | None = None
        self.log_lines_dropped = 0
        self.parent_gone = False

    def rows(self, written: int) -> None:
        self.unannounced = written
        self.retry()

    def retry(self) -> None:
        """Announce the latest row count, if the last try did not get through."""
        written = self.unannounced
        if written is not None and self._try(ROWS, _ROWS.pack(written)):
            self.unannounced = None

    def log(self, record: logging.LogRecord) -> None:
        message = {
            "name": record.name,
            "levelno": record.levelno,
            "levelname": record.levelname,
            "msg": record.getMessage()[:2000],
            "args": None,
            "created": record.created,
            "msecs": record.msecs,
        }
        key = getattr(record, COALESCE, None)
        if key is not None:
            message[COALESCE] = key
        if not self._try(LOG, pickle.dumps(message)):
            self.log_lines_dropped += 1

    def must(self, kind: int, message: dict[str, Any], timeout_s: float = 10.0) -> None:
        data = self._framed(kind, pickle.dumps(message))
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while data and not self.parent_gone:
                try:
                    sent = os.write(self.fd, data)
                    data = data[sent:]
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return
                    select.select([], [self.fd], [], 0.1)
                except OSError:
                    self.parent_gone = True

    def _try(self, kind: int, payload: bytes) -> bool:
        data = self._framed(kind, payload)
        if len(data) > PIPE_ATOMIC:
            return False
        with self.lock:
            try:
                os.write(self.fd, data)
                return True
            except BlockingIOError:
                return False
            except OSError:
                self.parent_gone = True
                return False

    @staticmethod
    def _framed(kind: int, payload: bytes) -> bytes:
        return _FRAME.pack(kind, len(payload)) + payload


class _Forwarding(logging.Handler):
    """The child's log handler: every record goes to the parent."""

    def __init__(self, out: _ToParent) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.out.log(record)
        except Exception:
            self.handleError(record)


class _RingWriter:
    """Delivers the converter's blocks into the ring and announces them."""

    def __init__(self, ring: SampleRing, out: _ToParent, source: ThreadedSource) -> None:
        self.ring, self.out, self.source = ring, out, source
        self.virtual = not is_real_time(source.clock)

    def deliver(self, block: SampleBlock) -> None:
        if self.virtual:
            self._await_room(block.n)
        times = block.times if block.times is not None else np.full(block.n, block.t_last)
        written = self.ring.write(block.first_index, block.samples, times)
        if written < block.n:
            stats = self.source.stats
            stats.overruns += 1
            lost = block.samples[written:]
            stats.dropped_frames += int((~np.isnan(lost).any(axis=1)).sum())
            log.warning(
                "the daemon fell %.0f s of signal behind the acquisition: %d frames dropped "
                "(a gap)",
                self.ring.capacity / max(self.source.nominal_fs, 1e-9),
                block.n - written,
                extra=repeated("acquisition ring full"),
            )
        self.ring.put_stats(self.source.stats)
        self.out.rows(self.ring.written)

    def _await_room(self, n: int) -> None:
        while self.ring.free() < n and not self.source._stop.is_set():
            self.out.retry()
            if self.out.parent_gone:
                self.source._stop.set()
                return
            time.sleep(0.0005)


def main() -> None:
    """`python -m hardware.acquisition_process`: the acquisition process (see the module doc);
    its recipe comes pickled on standard input."""
    started = time.monotonic()
    options, out_fd, in_fd, recipe = pickle.load(sys.stdin.buffer)
    _die_with_parent(options.parent_pid)
    sys.setswitchinterval(1e-4)  # a waking acquisition thread gets the interpreter at once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = _ToParent(out_fd)
    _forward_logs(out, options.log_level)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    priority = _ask_priority(options.realtime_priority)
    source: ThreadedSource | None = None
    try:
        try:
            build = pickle.loads(recipe)
        except Exception as error:
            raise AcquisitionError(
                f"the acquisition process cannot rebuild the converter's recipe ({error}): it "
                "must be a function of an importable module, not of a script's __main__"
            ) from error
        source = build()
        source.open()
    except BaseException as error:
        out.must(FAILED, _failure_message(error, 0, None, started, out))
        _close_quietly(source)
        return
    stop = source._stop
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    if stopping.is_set():
        stop.set()
    out.must(
        READY,
        {
            "channels": source.channels,
            "nominal_fs": source.nominal_fs,
            "units": source.units,
            "priority": priority,
        },
    )
    control = _Control(in_fd)
    ring = control.ring(len(source.channels))
    if ring is not None and control.await_start():
        threading.Thread(target=control.watch, args=(stop,), daemon=True).start()
        _acquire(source, ring, out, started)
    else:
        out.must(END, _final_message(ring, source, started, out))
    _close_quietly(source)
    if ring is not None:
        ring.close()


class _Control:
    """What the parent says: the ring's name, then "go", then "stop" (or nothing: it is gone)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _read(self) -> bytes:
        while True:
            try:
                return os.read(self.fd, 1)
            except InterruptedError:
                continue
            except OSError:
                return b""

    def ring(self, n_channels: int) -> SampleRing | None:
        if self._read() != RING:
            return None
        line = b""
        while not line.endswith(b"\n"):
            byte = self._read()
            if not byte:
                return None
            line += byte
        name, capacity = line.decode().split()
        return SampleRing.attach(name, n_channels, int(capacity))

    def await_start(self) -> bool:
        return self._read() == START

    def watch(self, stop: threading.Event) -> None:
        """Stop on "stop" or when the parent is gone (end of file)."""
        while self._read() == START:
            pass
        stop.set()


def _acquire(source: ThreadedSource, ring: SampleRing, out: _ToParent, started: float) -> None:
    gc.collect()
    gc.freeze()  # what exists now is never scanned again: collections stay short
    if is_real_time(source.clock):
        source.max_block_s = PUBLISH_S * getattr(source.clock, "speed", 1.0)
    else:
        source.block_frames = min(VIRTUAL_BLOCK_FRAMES, ring.capacity // 4)
    writer = _RingWriter(ring, out, source)
    acquiring = (time.monotonic(), sum(os.times()[:2]))
    try:
        source.run(writer.deliver)
    except BaseException as error:
        ring.put_stats(source.stats)
        out.must(FAILED, _failure_message(error, ring.written, source, started, out))
        return
    ring.put_stats(source.stats)
    final = _final_message(ring, source, started, out)
    final["extra"].update(
        acquire_wall_s=time.monotonic() - acquiring[0],
        acquire_cpu_s=sum(os.times()[:2]) - acquiring[1],
    )
    out.must(END, final)


def _final_message(
    ring: SampleRing | None, source: ThreadedSource, started: float, out: _ToParent
) -> dict[str, Any]:
    usage = os.times()
    return {
        "written": ring.written if ring is not None else 0,
        "stats": source.stats,
        "cpu_s": usage.user + usage.system,
        "wall_s": time.monotonic() - started,
        "log_lines_dropped": out.log_lines_dropped,
        "extra": dict(getattr(source, "report_extra", {}) or {}),
    }


def _failure_message(
    error: BaseException,
    written: int,
    source: ThreadedSource | None,
    started: float,
    out: _ToParent,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "written": written,
        "text": f"{type(error).__name__}: {error}" if not str(error) else str(error),
        "traceback": "".join(traceback.format_exception(error)),
        "cpu_s": sum(os.times()[:2]),
        "wall_s": time.monotonic() - started,
        "log_lines_dropped": out.log_lines_dropped,
    }
    if source is not None:
        message["stats"] = source.stats
    try:
        pickle.loads(pickle.dumps(error))
        message["error"] = error
    except Exception:
        pass
    return message


def _forward_logs(out: _ToParent, level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Forwarding(out))
    root.setLevel(level)


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the parent dies (Linux); exit at once if it already has."""
    libc = _libc()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        libc.prctl(_PR_SET_TIMERSLACK, 1000)  # ns: sleeps end within a microsecond
    if os.getppid() != parent_pid:
        os._exit(1)


def _ask_priority(realtime_priority: int | None) -> str:
    """Real-time scheduling if asked for and allowed; what was obtained, in words."""
    if realtime_priority is None:
        return "normal priority"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(realtime_priority))
    except (PermissionError, OSError, AttributeError) as error:
        return (
            f"normal priority (real-time priority {realtime_priority} not allowed: {error}; "
            "the service allows it with LimitRTPRIO)"
        )
    return f"real-time priority (SCHED_FIFO {realtime_priority})"


def _close_quietly(source: ThreadedSource | None) -> None:
    if source is None:
        return
    with contextlib.suppress(Exception):
        source.close()


if __name__ == "__main__":  # run as the module itself, so pickles name one set of classes
    from hardware.acquisition_process import main as acquisition_main

    acquisition_main()
