"""`crampwatch evaluate EVENTS TRUTH`: score detected events against ground-truth annotations.

EVENTS is the replay output, JSON lines (one object per line): event objects count when they have
no `phase` or `phase == "ended"`; a line with `"type": "summary"` gives the recording `duration_s`;
lines with another `type`, or a `schema` that is not an event schema, are skipped. A CSV with a
header naming at least kind,channel,start_s,end_s (optional phase, event_id) is accepted too.

TRUTH is a CSV with a header `kind,start_s,end_s[,channel]` (an empty channel means all channels)
or JSON lines of objects with those keys. In both files blank lines and lines starting with `#`
are ignored; the format is recognised from the content (a first line starting with `{` is JSON).

Channels must agree: a truth channel that is not among the recording's channels (the summary
line's `channels`, else the channels of the detections) is an error that lists both sets, unless
`--channel-map TRUTH=DETECTED` renames it. Files given the wrong way round (truth first) are
recognised and said. Figures that cannot be computed (recall and F1 without true segments,
precision without detections) are shown as n/a with the reason, never as a perfect 1.000.

Recording hours, for false detections per hour: `--hours`, else the summary line's `duration_s`,
else the latest end among truth and detections. Exit codes: 0 scored, 1 a problem with an input
file (the message names the file and line), 2 a bad argument.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dsp.annotations import ANNOTATION_KINDS, Annotation
from dsp.evaluation import SCORABLE_KINDS, Detection, evaluate, to_detection
from dsp.events import PHASE_STARTED
from hardware.recordings import RecordingError, open_recording

PROG = "crampwatch evaluate"
EVENT_SCHEMA_PREFIX = "crampwatch.event/"
ANNOTATION_CSV_COLUMNS = ("kind", "start_s", "end_s", "channel")
EVENT_CSV_REQUIRED = ("kind", "channel", "start_s", "end_s")
ANNOTATION_CSV_REQUIRED = ("kind", "start_s", "end_s")


class InputFileError(ValueError):
    """An input file is missing or malformed; the message says where and what to do."""


@dataclass(frozen=True, slots=True)
class EventsFile:
    """What an events file holds: the ended detections and the recording duration if stated."""

    detections: tuple[Detection, ...]
    duration_s: float | None = None
    channels: tuple[str, ...] | None = None  # the recording's channels, from the summary line

    def channel_names(self) -> tuple[tuple[str, ...], str]:
        """The recording's channels and where they come from (the summary, else detections)."""
        if self.channels is not None:
            return self.channels, "the events file summary"
        found = sorted({d.channel for d in self.detections if d.channel is not None})
        return tuple(found), "the detections"


# --- reading ------------------------------------------------------------------------------


def _read_lines(path: Path, what: str) -> list[str]:
    if not path.exists():
        raise InputFileError(f"{what} file {path} does not exist; check the path")
    if path.is_dir():
        raise InputFileError(f"{what} file {path} is a directory; give the path of a file")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{what} file {path} is not UTF-8 text ({exc.reason}); give a CSV or JSON-lines file"
        ) from exc
    except OSError as exc:
        raise InputFileError(f"cannot read {what} file {path}: {exc.strerror}") from exc


def _content_lines(lines: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for lines that are not blank and not `#` comments."""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, line


def _is_json_lines(lines: Sequence[str]) -> bool:
    for _number, line in _content_lines(lines):
        return line.lstrip().startswith("{")
    return False


def _json_objects(path: Path, lines: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in _content_lines(lines):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(
                f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from exc
        if not isinstance(obj, dict):
            raise InputFileError(
                f"{path}:{number}: expected a JSON object, got {type(obj).__name__}; "
                "each line must be one JSON object"
            )
        yield number, obj


def _csv_rows(
    path: Path, lines: Sequence[str], required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header row as dicts keyed by lower-case column name."""
    content = list(_content_lines(lines))
    if not content:
        return
    header_number, header_line = content[0]
    header = [name.strip().lower() for name in next(csv.reader([header_line]))]
    missing = [name for name in required if name not in header]
    if missing:
        raise InputFileError(
            f"{path}:{header_number}: the CSV header must name the columns {','.join(required)} "
            f"(missing {', '.join(missing)}; found {','.join(header) or 'nothing'}); "
            "add a header row"
        )
    for number, line in content[1:]:
        cells = next(csv.reader([line]))
        if len(cells) > len(header):
            raise InputFileError(
                f"{path}:{number}: {len(cells)} fields but the header has {len(header)}; "
                "quote values that contain commas"
            )
        row = {name: "" for name in header}
        row.update({name: cell.strip() for name, cell in zip(header, cells, strict=False)})
        yield number, row


def _csv_number(path: Path, number: int, row: dict[str, str], name: str) -> float:
    text = row.get(name, "")
    try:
        value = float(text)
    except ValueError:
        raise InputFileError(
            f"{path}:{number}: {name} must be a number of seconds, got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise InputFileError(f"{path}:{number}: {name} must be finite, got {text!r}")
    return value


def load_events(path: str | Path) -> EventsFile:
    """Read an events file (JSON lines from a replay, or CSV); keep only ended events."""
    path = Path(path)
    lines = _read_lines(path, "events")
    detections: list[Detection] = []
    duration_s: float | None = None
    channels: tuple[str, ...] | None = None
    if _is_json_lines(lines):
        for number, obj in _json_objects(path, lines):
            record_type = obj.get("type")
            if record_type == "summary":
                duration_s = _summary_duration(path, number, obj)
                if isinstance(obj.get("channels"), dict):
                    channels = tuple(str(name) for name in obj["channels"])
                continue
            if record_type is not None and record_type != "event":
                continue
            schema = obj.get("schema")
            if isinstance(schema, str) and not schema.startswith(EVENT_SCHEMA_PREFIX):
                continue
            detection = _event_from(path, number, obj)
            if detection is not None:
                detections.append(detection)
    else:
        for number, row in _csv_rows(path, lines, EVENT_CSV_REQUIRED):
            if row.get("phase") == PHASE_STARTED:
                continue  # its `ended` row has the full extent; the end may be blank here
            event: dict[str, Any] = {
                "kind": row["kind"],
                "channel": row["channel"] or None,
                "start_s": _csv_number(path, number, row, "start_s"),
                "end_s": _csv_number(path, number, row, "end_s"),
                "event_id": row.get("event_id") or None,
            }
            if row.get("phase"):
                event["phase"] = row["phase"]
            detection = _event_from(path, number, event)
            if detection is not None:
                detections.append(detection)
    return EventsFile(detections=tuple(detections), duration_s=duration_s, channels=channels)


def _summary_duration(path: Path, number: int, obj: dict[str, Any]) -> float | None:
    value = obj.get("duration_s")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputFileError(
            f"{path}:{number}: summary duration_s must be a number of seconds, got {value!r}"
        )
    if value < 0:
        raise InputFileError(f"{path}:{number}: summary duration_s is negative ({value})")
    return float(value)


def _event_from(path: Path, number: int, obj: dict[str, Any]) -> Detection | None:
    try:
        return to_detection(obj)
    except ValueError as exc:
        raise InputFileError(f"{path}:{number}: {exc}; fix or remove this line") from None


def load_annotations(path: str | Path) -> list[Annotation]:
    """Read ground truth: CSV `kind,start_s,end_s[,channel]` with a header, JSON lines, or the
    annotations of an EDF+/BDF+ file (texts `KIND` or `KIND CHANNEL`; other texts are skipped)."""
    path = Path(path)
    if path.suffix.lower() in (".edf", ".bdf"):
        return _edf_annotations(path)
    lines = _read_lines(path, "truth")
    annotations: list[Annotation] = []
    if _is_json_lines(lines):
        for number, obj in _json_objects(path, lines):
            for key in ANNOTATION_CSV_REQUIRED:
                if obj.get(key) is None:
                    raise InputFileError(f"{path}:{number}: annotation has no {key!r}")
            for key in ("start_s", "end_s"):
                value = obj[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                ):
                    raise InputFileError(
                        f"{path}:{number}: {key} must be a number of seconds, got {value!r}"
                    )
            channel = obj.get("channel")
            if channel is not None and (
                isinstance(channel, bool) or not isinstance(channel, str | int)
            ):
                raise InputFileError(
                    f"{path}:{number}: channel must be a string or null, got {channel!r}"
                )
            annotations.append(
                _annotation(
                    path,
                    number,
                    obj["kind"],
                    float(obj["start_s"]),
                    float(obj["end_s"]),
                    str(channel) if channel not in (None, "") else None,
                )
            )
    else:
        for number, row in _csv_rows(path, lines, ANNOTATION_CSV_REQUIRED):
            annotations.append(
                _annotation(
                    path,
                    number,
                    row["kind"],
                    _csv_number(path, number, row, "start_s"),
                    _csv_number(path, number, row, "end_s"),
                    row.get("channel") or None,
                )
            )
    return annotations


def _annotation(
    path: Path, number: int, kind: Any, start_s: float, end_s: float, channel: str | None
) -> Annotation:
    if kind not in ANNOTATION_KINDS:
        raise InputFileError(
            f"{path}:{number}: unknown kind {kind!r}; expected one of {', '.join(ANNOTATION_KINDS)}"
        )
    if end_s < start_s:
        raise InputFileError(
            f"{path}:{number}: the {kind} segment ends (end_s={end_s:g}) before it starts "
            f"(start_s={start_s:g}); swap or fix the times"
        )
    return Annotation(kind=kind, start_s=start_s, end_s=end_s, channel=channel)


def _edf_annotations(path: Path) -> list[Annotation]:
    try:
        with open_recording(path) as recording:
            found = recording.annotations()
    except RecordingError as error:
        raise InputFileError(str(error)) from error
    annotations = []
    for item in found:
        words = item.text.strip().split()
        if not words or words[0].lower() not in ANNOTATION_KINDS:
            continue
        channel = words[1] if len(words) > 1 else None
        end = item.onset_s + (item.duration_s or 0.0)
        annotations.append(Annotation(words[0].lower(), item.onset_s, end, channel))
    return annotations


def write_annotations_csv(path: str | Path, annotations: Iterable[Annotation]) -> None:
    """Write annotations as CSV `kind,start_s,end_s,channel` (empty channel = all), readable back
    by `load_annotations` with exact float values. Creates the parent directory if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ANNOTATION_CSV_COLUMNS)
        for a in annotations:
            writer.writerow([a.kind, repr(float(a.start_s)), repr(float(a.end_s)), a.channel or ""])


# --- checks -------------------------------------------------------------------------------

# Columns only an events file has (a truth file has kind, start_s, end_s and maybe channel).
_EVENT_ONLY_COLUMNS = {"event_id", "phase", "peak_uv", "duration_s", "device", "schema"}
_EVENT_RECORD_TYPES = {"summary", "quality", "marker", "state"}
_SNIFF_LINES = 50


class ChannelMismatchError(InputFileError):
    """Truth and detections name different channels; the message lists both."""


def file_looks_like(path: Path) -> str:
    """ "events", "truth" or "unknown", from a glance at the file (for arguments given the wrong
    way round). An EDF/BDF file can only be truth (its annotations)."""
    if path.suffix.lower() in (".edf", ".bdf"):
        return "truth"
    try:
        with path.open(encoding="utf-8-sig") as handle:
            head = [line for _, line in zip(range(_SNIFF_LINES * 4), handle, strict=False)]
    except (OSError, UnicodeDecodeError):
        return "unknown"
    content = [line for _number, line in _content_lines(head)][:_SNIFF_LINES]
    if not content:
        return "unknown"
    if content[0].lstrip().startswith("{"):
        return _json_looks_like(content)
    header = {name.strip().lower() for name in next(csv.reader([content[0]]))}
    if header & _EVENT_ONLY_COLUMNS:
        return "events"
    if set(ANNOTATION_CSV_REQUIRED) <= header <= set(ANNOTATION_CSV_COLUMNS):
        return "truth"
    return "unknown"


def _json_looks_like(lines: Sequence[str]) -> str:
    segments = 0
    for line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return "unknown"
        if not isinstance(obj, dict):
            return "unknown"
        schema = obj.get("schema")
        if (
            (isinstance(schema, str) and schema.startswith(EVENT_SCHEMA_PREFIX))
            or obj.get("type") in _EVENT_RECORD_TYPES
            or "event_id" in obj
            or "phase" in obj
        ):
            return "events"
        segments += all(key in obj for key in ANNOTATION_CSV_REQUIRED)
    return "truth" if segments else "unknown"


def check_argument_order(events_path: Path, truth_path: Path) -> str | None:
    """What is wrong with the order of the two files, or None when it looks right."""
    events_is, truth_is = file_looks_like(events_path), file_looks_like(truth_path)
    usage = "the order is `crampwatch evaluate EVENTS TRUTH`"
    if events_is == "truth" and truth_is == "events":
        return (
            f"the two files look swapped: {events_path} holds ground truth and {truth_path} "
            f"holds detected events; {usage}: crampwatch evaluate {truth_path} {events_path}"
        )
    if truth_is == "events":
        return (
            f"the truth file {truth_path} holds detected events (crampwatch.event lines or "
            f"columns such as event_id and phase), not ground truth; {usage}, with TRUTH a CSV "
            "kind,start_s,end_s[,channel], JSON lines of such segments, or an EDF+ file"
        )
    if events_path.suffix.lower() in (".edf", ".bdf"):
        return (
            f"the events file {events_path} is an EDF/BDF recording; {usage}: EVENTS is the "
            "output of `crampwatch replay` (JSON lines or CSV), and an EDF+ file's annotations "
            "can be the TRUTH"
        )
    return None


def parse_channel_map(values: Sequence[str] | None) -> dict[str, str]:
    """`--channel-map TRUTH=DETECTED` values (each may hold several, comma-separated)."""
    mapping: dict[str, str] = {}
    for value in values or ():
        for item in value.split(","):
            truth_name, sep, detected_name = (part.strip() for part in item.partition("="))
            if not sep or not truth_name or not detected_name:
                raise ValueError(
                    f"--channel-map {item!r} is not TRUTH=DETECTED (for example left=ch0)"
                )
            mapping[truth_name] = detected_name
    return mapping


def match_truth_channels(
    truth: Sequence[Annotation], events: EventsFile, channel_map: dict[str, str] | None = None
) -> list[Annotation]:
    """The truth with channels renamed by `channel_map`; raises ChannelMismatchError when its
    channels do not fit the recording's (they would silently score as missed and false)."""
    mapping = channel_map or {}
    renamed = [
        replace(a, channel=mapping.get(a.channel, a.channel)) if a.channel is not None else a
        for a in truth
    ]
    truth_channels = sorted({a.channel for a in renamed if a.channel is not None})
    detected, source = events.channel_names()
    if not truth_channels or not detected:
        return renamed
    unknown = [c for c in truth_channels if c not in detected]
    authoritative = events.channels is not None
    if unknown and (authoritative or len(unknown) == len(truth_channels)):
        mapped = f" (after --channel-map {mapping})" if mapping else ""
        raise ChannelMismatchError(
            f"the truth names channels {truth_channels}{mapped} but the recording's channels "
            f"are {list(detected)} (from {source}); {unknown} match none of them, so their "
            "segments would all count as missed and the detections as false. Rename them with "
            f"--channel-map, e.g. --channel-map {unknown[0]}={detected[0]}, or leave the channel "
            "empty in the truth for segments that apply to every channel"
        )
    return renamed


# --- command ------------------------------------------------------------------------------


def recording_hours(
    hours: float | None,
    events: EventsFile,
    truth: Sequence[Annotation],
) -> tuple[float | None, str]:
    """The recording length in hours and where it came from (None when nothing says)."""
    if hours is not None:
        return hours, "--hours"
    if events.duration_s is not None and events.duration_s > 0:
        return events.duration_s / 3600.0, "events file summary"
    ends = [d.end_s for d in events.detections] + [a.end_s for a in truth]
    latest = max(ends, default=0.0)
    if latest > 0:
        return latest / 3600.0, "latest end in truth and detections"
    return None, "unknown"


def add_parser(subparsers: Any) -> None:
    """Add the `evaluate` subcommand to `subparsers` (from ArgumentParser.add_subparsers())."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score detected events against ground-truth annotations",
        description=(
            "Match detected events to ground-truth segments (one-to-one, greedy by largest "
            "overlap, same kind, compatible channel) and report precision, recall, F1, onset and "
            "offset errors, false detections per hour, and the missed and false segments."
        ),
    )
    parser.add_argument("events", type=Path, metavar="EVENTS", help="events: JSON lines or CSV")
    parser.add_argument(
        "truth",
        type=Path,
        metavar="TRUTH",
        help="ground truth: CSV kind,start_s,end_s[,channel] or JSON lines",
    )
    parser.add_argument(
        "--kind",
        action="append",
        choices=SCORABLE_KINDS,
        default=None,
        help="kind to score (repeat for several; default cramp)",
    )
    parser.add_argument(
        "--min-overlap",
        type=float,
        default=0.0,
        metavar="S",
        help="a match needs more than S seconds of overlap (default 0: any overlap)",
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=None,
        metavar="H",
        help="recording length in hours (default: from the events summary, else latest end)",
    )
    parser.add_argument(
        "--channel-map",
        action="append",
        metavar="TRUTH=DETECTED",
        help="score truth channel TRUTH against detected channel DETECTED (repeat, or separate "
        "pairs with commas)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def _error(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Run `crampwatch evaluate`; returns the exit code."""
    kinds = list(args.kind or ["cramp"])
    unknown = [k for k in kinds if k not in SCORABLE_KINDS]
    if unknown:
        return _error(
            f"unknown kind {unknown[0]!r} for --kind; expected one of {', '.join(SCORABLE_KINDS)}",
            2,
        )
    min_overlap = args.min_overlap
    if not (math.isfinite(min_overlap) and min_overlap >= 0):
        return _error(f"--min-overlap must be 0 or more seconds, got {min_overlap}", 2)
    if args.hours is not None and not (math.isfinite(args.hours) and args.hours > 0):
        return _error(f"--hours must be a positive number of hours, got {args.hours}", 2)
    try:
        channel_map = parse_channel_map(getattr(args, "channel_map", None))
    except ValueError as exc:
        return _error(str(exc), 2)
    if args.events.is_file() and args.truth.is_file():
        wrong_order = check_argument_order(args.events, args.truth)
        if wrong_order:
            return _error(wrong_order, 2)
    try:
        events = load_events(args.events)
        truth = match_truth_channels(load_annotations(args.truth), events, channel_map)
    except InputFileError as exc:
        return _error(str(exc), 1)
    hours, source = recording_hours(args.hours, events, truth)
    report = evaluate(
        events.detections,
        truth,
        kinds=kinds,
        min_overlap_s=min_overlap,
        recording_hours=hours,
        extra={
            "recording_hours_source": source,
            "events_file": str(args.events),
            "truth_file": str(args.truth),
        },
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"events: {args.events}  ({len(events.detections)} ended events)")
        print(f"truth:  {args.truth}  ({len(truth)} segments)")
        print(f"recording hours from: {source}")
        print()
        sys.stdout.write(report.format_text())
    return 0
