"""Compact, lossless storage of sample blocks: the records inside a night's segment files.

A segment file is `MAGIC` followed by one zlib stream. The recorder writes one record per
write-through (about half a second) and ends each with a zlib sync flush, so whatever reached the
disk decodes up to its last complete record, however the process stopped. Each record::

    header  <BBQII: kind, flags, first_sample, n_frames, n_escapes        (18 bytes)
    kind 1  (ADC codes, every finite value a whole number that fits int16)
            int8[channels][n_frames]  first differences per channel (from 0 at the record's
                                      start); -128 marks an escape
            int16[n_escapes]          the code itself at each escape, in the same order
            uint8[...]                if flags & 1: packed bits, frame-major, 1 = missing (NaN)
    kind 2  (anything else)
            float32[n_frames][channels] the values themselves (NaN kept)

Missing samples inside a kind 1 record hold the channel's previous code (so differences stay small)
and are marked in the bit mask. Records carry their first sample, so a stretch that was not
recorded (a full disk) is simply absent and reads back as missing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

MAGIC = b"CWZ1"
KIND_CODES, KIND_FLOAT = 1, 2
FLAG_MISSING = 1
ESCAPE = -128
HEADER = struct.Struct("<BBQII")
RECORD_FRAMES = 1 << 15  # frames per record at most, so that a record decodes in a few MB
MAX_RECORD_FRAMES = 1 << 16  # a record longer than this is damage, not data
LEVEL = 6  # zlib level: 1 is 3x faster and about 10 % larger (benchmarks/night_storage.py)
_READ_BYTES = 1 << 16
_MAX_INFLATE = 1 << 20


class RecordError(ValueError):
    """A record that cannot be what the recorder wrote."""


@dataclass(frozen=True, slots=True)
class Record:
    first_sample: int
    values: np.ndarray  # (n_frames, channels) float64, NaN where missing


def encode(first_sample: int, values: np.ndarray) -> bytes:
    """One record for `values` (n, channels), float64 with NaN: as codes when they are all whole
    numbers within int16, else as float32."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    missing = np.isnan(values)
    present = values[~missing]
    if len(present) == 0 or _are_codes(present):
        return _encode_codes(first_sample, values, missing)
    body = values.astype("<f4").tobytes()
    return HEADER.pack(KIND_FLOAT, 0, first_sample, n, 0) + body


def _are_codes(present: np.ndarray) -> bool:
    return bool(
        np.all(present == np.rint(present)) and present.min() >= -32768 and present.max() <= 32767
    )


def _encode_codes(first_sample: int, values: np.ndarray, missing: np.ndarray) -> bytes:
    n = len(values)
    held = _hold_previous(values, missing).astype(np.int32).T  # (channels, n)
    steps = np.diff(held, axis=1, prepend=0)
    escaped = (steps <= ESCAPE) | (steps > 127)
    narrow = np.where(escaped, ESCAPE, steps).astype(np.int8)
    escapes = held[escaped].astype("<i2")
    flags = 0
    parts = [narrow.tobytes(), escapes.tobytes()]
    if missing.any():
        flags |= FLAG_MISSING
        parts.append(np.packbits(missing.ravel()).tobytes())
    return HEADER.pack(KIND_CODES, flags, first_sample, n, len(escapes)) + b"".join(parts)


def _hold_previous(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Missing values replaced by the channel's previous value (0 before the first)."""
    if not missing.any():
        return values
    n = len(values)
    index = np.where(missing, 0, np.arange(n)[:, None])
    np.maximum.accumulate(index, axis=0, out=index)
    held = np.take_along_axis(values, index, axis=0)
    return np.where(np.isnan(held), 0.0, held)


def body_size(kind: int, flags: int, n: int, escapes: int, channels: int) -> int:
    if kind == KIND_FLOAT:
        return 4 * n * channels
    size = n * channels + 2 * escapes
    if flags & FLAG_MISSING:
        size += (n * channels + 7) // 8
    return size


def decode(kind: int, flags: int, n: int, escapes: int, channels: int, body: bytes) -> np.ndarray:
    """The values of one record's body, (n, channels) float64 with NaN."""
    if kind == KIND_FLOAT:
        return np.frombuffer(body, dtype="<f4").reshape(n, channels).astype(np.float64)
    narrow = np.frombuffer(body, dtype=np.int8, count=n * channels).reshape(channels, n)
    wide = np.frombuffer(body, dtype="<i2", count=escapes, offset=n * channels)
    escaped = narrow == ESCAPE
    if int(escaped.sum()) != escapes:
        raise RecordError("the escape count does not match the record's header")
    steps = np.where(escaped, 0, narrow).astype(np.int64)
    running = np.cumsum(steps, axis=1)
    # Each value: the code at the last escape at or before it, plus the steps since then.
    base = np.zeros((channels, n), dtype=np.int64)
    base[escaped] = wide.astype(np.int64)
    position = np.where(escaped, np.arange(n), -1)
    np.maximum.accumulate(position, axis=1, out=position)
    rows = np.arange(channels)[:, None]
    anchor = np.where(position >= 0, base[rows, np.maximum(position, 0)], 0)
    anchor_running = np.where(position >= 0, running[rows, np.maximum(position, 0)], 0)
    values = (anchor + running - anchor_running).T.astype(np.float64)
    if flags & FLAG_MISSING:
        mask_bytes = np.frombuffer(body, dtype=np.uint8, offset=n * channels + 2 * escapes)
        mask = np.unpackbits(mask_bytes, count=n * channels).reshape(n, channels).astype(bool)
        values[mask] = np.nan
    return values


class SegmentWriter:
    """Encodes records into a segment's zlib stream; `chunk` gives the bytes to append."""

    def __init__(self, level: int = LEVEL) -> None:
        self._compressor = zlib.compressobj(level)

    @staticmethod
    def start() -> bytes:
        return MAGIC

    def chunk(self, first_sample: int, values: np.ndarray) -> bytes:
        """The bytes that append `values` (as records of at most RECORD_FRAMES), flushed so that
        they decode on their own."""
        parts = [
            self._compressor.compress(encode(first_sample + at, values[at : at + RECORD_FRAMES]))
            for at in range(0, len(values), RECORD_FRAMES)
        ]
        return b"".join(parts) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def bound(values: np.ndarray) -> int:
        """At most how many bytes `chunk` appends for these values (for the disk budget)."""
        n, channels = values.shape
        records = max(1, -(-n // RECORD_FRAMES))
        raw = records * HEADER.size + 4 * n * channels
        return raw + raw // 1000 + 64  # zlib's worst case adds a few bytes per 16 KB block


def read_records(handle: BinaryIO, channels: int, problems: list[str]) -> Iterator[Record]:
    """The complete records of one segment file, in order, in bounded memory. What cannot be
    read (a wrong start, damage, a record cut short) ends the segment, noted in `problems`."""
    if handle.read(len(MAGIC)) != MAGIC:
        problems.append("does not start like a crampwatch sample segment; skipped")
        return
    inflater = zlib.decompressobj()
    buffer = bytearray()
    while True:
        raw = inflater.unconsumed_tail or handle.read(_READ_BYTES)
        if not raw:
            break
        try:
            buffer += inflater.decompress(raw, _MAX_INFLATE)
        except zlib.error as error:
            problems.append(f"is damaged ({error}); the rest of it reads as missing")
            yield from _parse(buffer, channels, problems)
            return
        yield from _parse(buffer, channels, problems)
        if problems and problems[-1].startswith("holds an impossible"):
            return
    yield from _parse(buffer, channels, problems)
    if buffer:
        problems.append(f"ends in a record cut short ({len(buffer)} bytes), ignored")


def _parse(buffer: bytearray, channels: int, problems: list[str]) -> Iterator[Record]:
    """Take every complete record off the front of `buffer`."""
    while len(buffer) >= HEADER.size:
        kind, flags, first, n, escapes = HEADER.unpack_from(buffer)
        if (
            kind not in (KIND_CODES, KIND_FLOAT)
            or not 0 < n <= MAX_RECORD_FRAMES
            or (escapes > n * channels)
        ):
            problems.append("holds an impossible record (damage); the rest of it reads as missing")
            buffer.clear()
            return
        size = HEADER.size + body_size(kind, flags, n, escapes, channels)
        if len(buffer) < size:
            return
        body = bytes(buffer[HEADER.size : size])
        del buffer[:size]
        try:
            values = decode(kind, flags, n, escapes, channels, body)
        except (RecordError, ValueError) as error:
            problems.append(
                f"holds an impossible record ({error}); the rest of it reads as missing"
            )
            buffer.clear()
            return
        yield Record(first, values)
