"""Tests for `crampwatch evaluate`: file formats, output, and error messages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.annotations import ANNOTATION_KINDS, Annotation
from firmware_host.commands import evaluate as evaluate_command
from firmware_host.commands.evaluate import (
    InputFileError,
    load_annotations,
    load_events,
    write_annotations_csv,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crampwatch")
    sub = p.add_subparsers(dest="command", required=True)
    evaluate_command.add_parser(sub)
    return p


def cli(*argv: str | Path) -> int:
    args = parser().parse_args([str(a) for a in argv])
    return args.func(args)


def event_line(start: float, end: float | None, **fields: object) -> str:
    obj: dict[str, object] = {
        "schema": "crampwatch.event/1",
        "event_id": f"ev{start:g}",
        "device": "dev1",
        "channel": "L",
        "kind": "cramp",
        "phase": "ended",
        "start_s": start,
        "end_s": end,
    }
    obj.update(fields)
    return json.dumps(obj)


@pytest.fixture()
def events_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [
        event_line(100, None, phase="started"),
        event_line(100, 158),
        json.dumps({"type": "state", "channel": "L", "state": "idle", "at_s": 158}),
        event_line(900, 930),
        event_line(600, 602, kind="movement"),
        json.dumps({"type": "summary", "duration_s": 7200.0}),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def truth_csv(tmp_path: Path) -> Path:
    path = tmp_path / "truth.csv"
    path.write_text(
        "kind,start_s,end_s,channel\n"
        "cramp,98,160,L\n"
        "cramp,400,460,\n"
        "movement,600,603,L\n"
        "walking,1000,1200,\n"
    )
    return path


# --- loading ------------------------------------------------------------------------------


def test_load_events_jsonl(events_jsonl: Path) -> None:
    loaded = load_events(events_jsonl)
    assert [(d.kind, d.start_s, d.end_s) for d in loaded.detections] == [
        ("cramp", 100.0, 158.0),
        ("cramp", 900.0, 930.0),
        ("movement", 600.0, 602.0),
    ]
    assert loaded.detections[0].event_id == "ev100"
    assert loaded.duration_s == 7200.0


def test_load_events_csv(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "Kind, Channel, start_s, end_s, phase\n"
        "cramp,L,100,160,ended\n"
        "cramp,L,300,,started\n"
        "movement,,5,7,\n"
    )
    loaded = load_events(path)
    assert [(d.kind, d.channel, d.start_s) for d in loaded.detections] == [
        ("cramp", "L", 100.0),
        ("movement", None, 5.0),
    ]
    assert loaded.duration_s is None


def test_load_annotations_csv_and_jsonl(tmp_path: Path, truth_csv: Path) -> None:
    from_csv = load_annotations(truth_csv)
    assert from_csv[0] == Annotation("cramp", 98.0, 160.0, "L")
    assert from_csv[1].channel is None
    jsonl = tmp_path / "truth.jsonl"
    jsonl.write_text(
        "# synthetic night\n" + "\n".join(json.dumps(a.to_dict()) for a in from_csv) + "\n\n"
    )
    assert load_annotations(jsonl) == from_csv


def test_csv_without_channel_column(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("kind,start_s,end_s\ncramp,1,20\n")
    assert load_annotations(path) == [Annotation("cramp", 1.0, 20.0, None)]


def test_empty_files_are_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert load_annotations(path) == []
    assert load_events(path).detections == ()


def test_write_annotations_csv_round_trip(tmp_path: Path) -> None:
    annotations = [
        Annotation("cramp", 0.1, 600.123456789, "L"),
        Annotation("walking", 1000.0, 1300.0, None),
        Annotation("movement", 5.0, 5.0, "medial, left"),
    ]
    path = tmp_path / "sub" / "truth.csv"
    write_annotations_csv(path, annotations)
    assert path.read_text().splitlines()[0] == "kind,start_s,end_s,channel"
    assert load_annotations(path) == annotations


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(ANNOTATION_KINDS),
            st.floats(0, 1e5, allow_nan=False),
            st.floats(0, 1e4, allow_nan=False),
            st.one_of(st.none(), st.text("LRm_ ,\"'", min_size=1, max_size=5)),
        ),
        max_size=6,
    )
)
def test_write_read_property(raw: list[tuple[str, float, float, str | None]]) -> None:
    import tempfile

    annotations = [
        Annotation(k, s, s + d, c.strip() or None if c is not None else None) for k, s, d, c in raw
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        write_annotations_csv(path, annotations)
        assert load_annotations(path) == annotations


# --- the command --------------------------------------------------------------------------


def test_text_output(
    events_jsonl: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("evaluate", events_jsonl, truth_csv) == 0
    out = capsys.readouterr().out
    assert "recording hours from: events file summary" in out
    assert "recording: 2.00 h" in out
    row = next(line for line in out.splitlines() if line.startswith("cramp "))
    assert row.split()[:6] == ["cramp", "2", "2", "1", "1", "1"]
    assert "cramp detections overlapping walking truth (1 segment): 0" in out
    assert "missed cramp" in out
    assert "400.00 -     460.00 s" in out
    assert "event ev900" in out
    assert "movement " not in out.split("recording:")[0]  # only cramp scored by default


def test_json_output_several_kinds(
    events_jsonl: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(
        "evaluate", events_jsonl, truth_csv, "--kind", "cramp", "--kind", "movement", "--json"
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["scores"]) == {"cramp", "movement"}
    cramp = data["scores"]["cramp"]
    assert (cramp["tp"], cramp["fp"], cramp["fn"]) == (1, 1, 1)
    assert cramp["onset_errors_s"] == [2.0]
    assert cramp["offset_errors_s"] == [-2.0]
    assert cramp["false_per_hour"] == 0.5
    assert data["scores"]["movement"]["tp"] == 1
    assert data["recording_hours"] == 2.0
    assert data["recording_hours_source"] == "events file summary"
    assert data["truth_file"] == str(truth_csv)


def test_hours_and_min_overlap_options(
    events_jsonl: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("evaluate", events_jsonl, truth_csv, "--hours", "4", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recording_hours"] == 4.0
    assert data["scores"]["cramp"]["false_per_hour"] == 0.25
    assert cli("evaluate", events_jsonl, truth_csv, "--min-overlap", "100", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scores"]["cramp"]["tp"] == 0
    assert data["min_overlap_s"] == 100.0


def test_hours_fall_back_to_latest_end(
    tmp_path: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(event_line(100, 158) + "\n")
    assert cli("evaluate", events, truth_csv, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recording_hours"] == pytest.approx(1200 / 3600)
    assert data["recording_hours_source"] == "latest end in truth and detections"


def test_nothing_at_all_gives_unknown_hours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, truth = tmp_path / "e.jsonl", tmp_path / "t.csv"
    events.write_text("")
    truth.write_text("kind,start_s,end_s\n")
    assert cli("evaluate", events, truth) == 0
    out = capsys.readouterr().out
    assert "recording: unknown" in out


# --- errors -------------------------------------------------------------------------------


def run_error(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = cli(*argv)
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


def test_missing_file(
    tmp_path: Path, truth_csv: Path, events_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    code, err = run_error(capsys, "evaluate", missing, truth_csv)
    assert code == 1
    assert f"events file {missing} does not exist" in err
    code, err = run_error(capsys, "evaluate", events_jsonl, tmp_path / "nope.csv")
    assert code == 1
    assert "truth file" in err and "nope.csv" in err
    code, err = run_error(capsys, "evaluate", events_jsonl, tmp_path)
    assert code == 1 and "is a directory" in err


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ('{"kind": "cramp"\n', 1, "not valid JSON"),
        (event_line(1, 2) + "\n[1, 2]\n", 2, "expected a JSON object"),
        (event_line(1, 2) + "\n\n" + event_line(5, 3) + "\n", 3, "before it starts"),
        (event_line(1, 2, kind="sneeze") + "\n", 1, "unknown event kind 'sneeze'"),
        (event_line(1, 2, end_s="late") + "\n", 1, "end_s must be a number"),
        (json.dumps({"kind": "cramp", "channel": "L", "start_s": 1}) + "\n", 1, "no 'end_s'"),
        (json.dumps({"type": "summary", "duration_s": "8h"}) + "\n", 1, "duration_s"),
        ("kind,channel,start_s,end_s\ncramp,L,1,x\n", 2, "end_s must be a number"),
        ("kind,channel,start_s,end_s\ncramp,L,9,1\n", 2, "before it starts"),
        ("kind,channel,start_s,end_s\nstretch,L,1,9\n", 2, "unknown event kind"),
        ("cramp,L,1,9\n", 1, "header must name the columns"),
    ],
)
def test_malformed_events(
    tmp_path: Path,
    truth_csv: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    line: int,
    reason: str,
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(content)
    code, err = run_error(capsys, "evaluate", path, truth_csv)
    assert code == 1
    assert f"{path}:{line}:" in err
    assert reason in err
    with pytest.raises(InputFileError):
        load_events(path)


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("kind,start_s,end_s\ncramp,10,20\nsneeze,1,2\n", 3, "unknown kind 'sneeze'"),
        ("kind,start_s,end_s\ncramp,30,20\n", 2, "ends (end_s=20) before it starts"),
        ("kind,start_s,end_s\ncramp,ten,20\n", 2, "start_s must be a number"),
        ("kind,start_s,end_s\ncramp,1,nan\n", 2, "end_s must be finite"),
        ("kind,start,end\ncramp,1,2\n", 1, "missing start_s, end_s"),
        ("kind,start_s,end_s\ncramp,1,2,L,extra\n", 2, "fields but the header has"),
        ('{"kind": "cramp", "start_s": 1, "end_s": 2}\n{"kind": "cramp"}\n', 2, "no 'start_s'"),
        ('{"kind": "cramp", "start_s": 1, "end_s": 2, "channel": true}\n', 1, "channel"),
        ('{"kind": "walk", "start_s": 1, "end_s": 2}\n', 1, "unknown kind 'walk'"),
        ('{"kind": "cramp", "start_s": 1, "end_s": 2}\nnot json\n', 2, "not valid JSON"),
    ],
)
def test_malformed_truth(
    tmp_path: Path,
    events_jsonl: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    line: int,
    reason: str,
) -> None:
    path = tmp_path / "truth.csv"
    path.write_text(content)
    code, err = run_error(capsys, "evaluate", events_jsonl, path)
    assert code == 1
    assert f"{path}:{line}:" in err
    assert reason in err


def test_not_text(tmp_path: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.bin"
    path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    code, err = run_error(capsys, "evaluate", path, truth_csv)
    assert code == 1
    assert "not UTF-8 text" in err


def test_unknown_kind_option(
    events_jsonl: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("evaluate", events_jsonl, truth_csv, "--kind", "walking")
    assert exc.value.code == 2
    assert "invalid choice: 'walking'" in capsys.readouterr().err
    # run() checks too, when called with a Namespace built elsewhere.
    args = parser().parse_args(["evaluate", str(events_jsonl), str(truth_csv)])
    args.kind = ["sneeze"]
    assert evaluate_command.run(args) == 2
    assert "unknown kind 'sneeze'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [("--hours", "0", "--hours"), ("--hours", "-2", "--hours"), ("--min-overlap", "-1", "0 or")],
)
def test_bad_numbers(
    events_jsonl: Path,
    truth_csv: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    reason: str,
) -> None:
    code, err = run_error(capsys, "evaluate", events_jsonl, truth_csv, f"{option}={value}")
    assert code == 2
    assert reason in err


def test_edf_plus_annotations_serve_as_ground_truth(tmp_path: Path) -> None:
    import edfio
    import numpy as np

    signal = edfio.EdfSignal(
        np.zeros(200 * 100),
        sampling_frequency=100,
        label="left_calf",
        physical_range=(-500, 500),
        physical_dimension="uV",
    )
    notes = [
        edfio.EdfAnnotation(60.0, 30.0, "cramp left_calf"),
        edfio.EdfAnnotation(120.0, None, "marker"),
        edfio.EdfAnnotation(130.0, 2.0, "lights off"),
    ]
    path = tmp_path / "night.edf"
    edfio.Edf([signal], annotations=notes).write(path)
    truth = load_annotations(path)
    assert [(a.kind, a.start_s, a.end_s, a.channel) for a in truth] == [
        ("cramp", 60.0, 90.0, "left_calf"),
        ("marker", 120.0, 120.0, None),
    ]


# --- results that cannot mislead ----------------------------------------------------------


def summary_line(channels: list[str], duration_s: float = 3600.0) -> str:
    figures = {"cramps": 0, "movements": 0, "cramp_s": 0.0, "signal_lost_s": 0.0}
    return json.dumps(
        {"type": "summary", "duration_s": duration_s, "channels": dict.fromkeys(channels, figures)}
    )


def test_truth_channels_that_match_no_detected_channel_are_an_error_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    events.write_text(event_line(100, 160, channel="ch0") + "\n")
    truth.write_text("kind,start_s,end_s,channel\ncramp,98,161,left_calf\n")
    code, err = run_error(capsys, "evaluate", events, truth)
    assert code == 1
    assert "['left_calf']" in err and "['ch0']" in err
    assert "--channel-map left_calf=ch0" in err


def test_a_truth_channel_missing_from_the_recording_is_an_error_when_the_summary_lists_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    events.write_text(event_line(100, 160) + "\n" + summary_line(["L", "R"]) + "\n")
    truth.write_text("kind,start_s,end_s,channel\ncramp,98,161,L\ncramp,500,560,right\n")
    code, err = run_error(capsys, "evaluate", events, truth)
    assert code == 1
    assert (
        "['right'] match none of them" in err and "['L', 'R'] (from the events file summary)" in err
    )


def test_channel_map_scores_truth_channels_against_detected_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    events.write_text(
        event_line(100, 160, channel="ch0") + "\n" + summary_line(["ch0", "ch1"]) + "\n"
    )
    truth.write_text("kind,start_s,end_s,channel\ncramp,98,161,left_calf\n")
    assert cli("evaluate", events, truth, "--channel-map", "left_calf=ch0", "--json") == 0
    cramp = json.loads(capsys.readouterr().out)["scores"]["cramp"]
    assert (cramp["tp"], cramp["fp"], cramp["fn"]) == (1, 0, 0)
    code, err = run_error(capsys, "evaluate", events, truth, "--channel-map", "left_calf")
    assert code == 2 and "is not TRUTH=DETECTED" in err


def test_no_true_cramps_reports_false_detections_and_says_recall_cannot_be_computed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    events.write_text(summary_line(["L"], 7200.0) + "\n")
    truth.write_text("kind,start_s,end_s,channel\nwalking,10,100,L\n")
    assert cli("evaluate", events, truth) == 0
    out = capsys.readouterr().out
    assert "1.000" not in out
    row = next(line for line in out.splitlines() if line.startswith("cramp "))
    assert row.split()[6:9] == ["n/a", "n/a", "n/a"]
    assert "no true cramps in the truth: recall and F1 cannot be computed" in out
    assert "0 cramp detection(s), all false (0.00 per hour)" in out
    assert cli("evaluate", events, truth, "--json") == 0
    cramp = json.loads(capsys.readouterr().out)["scores"]["cramp"]
    assert cramp["precision"] is cramp["recall"] is cramp["f1"] is None
    assert cramp["false_per_hour"] == 0.0


def test_swapped_files_are_recognised_and_the_right_order_is_given(
    events_jsonl: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_error(capsys, "evaluate", truth_csv, events_jsonl)
    assert code == 2
    assert "look swapped" in err
    assert f"crampwatch evaluate {events_jsonl} {truth_csv}" in err
    assert "no 'end_s'" not in err


def test_an_events_file_given_as_truth_is_said(
    events_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_error(capsys, "evaluate", events_jsonl, events_jsonl)
    assert code == 2
    assert "holds detected events" in err and "not ground truth" in err


def test_a_recording_given_as_events_is_said(
    tmp_path: Path, truth_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "night.edf"
    path.write_bytes(b"0       " * 32)
    code, err = run_error(capsys, "evaluate", path, truth_csv)
    assert code == 2
    assert "is an EDF/BDF recording" in err and "can be the TRUTH" in err
