"""`crampwatch batch` as a lab runs it: on a real `dask scheduler` with `dask worker` processes
(on loopback), one of which dies mid-run; and stopped with Ctrl-C, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import crampwatch
from firmware_host.demo.local_broker import free_port
from research.tables import EVENT_COLUMNS, RECORDING_COLUMNS, read_csv_table
from tests.research_data import write_night

distributed = pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RECORDINGS = 8


def start(command: list[str], log: Path) -> subprocess.Popen:
    """A process in its own session (so a kill reaches all of it), output to `log`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as sink:
        return subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=REPO,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def group_is_gone(pgid: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
        if not found.stdout.split():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for number in range(RECORDINGS):
        write_night(data, f"night{number}", number, cramp_at=60.0 + number)
    return data


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """`dask scheduler` and two single-threaded `dask worker`s on loopback, free ports."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    scheduler = start(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard", "--dashboard-address", ":0"],
        logs / "scheduler.log",
    )  # fmt: skip
    workers = [
        start(
            [
                str(BIN / "dask"),
                "worker",
                address,
                "--name",
                f"w{n}",
                "--nthreads",
                "1",
                "--no-nanny",
                "--memory-limit",
                "1GiB",
                "--no-dashboard",
                "--local-directory",
                str(tmp_path / f"w{n}"),
            ],
            logs / f"w{n}.log",
        )
        for n in range(2)
    ]
    try:
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in (*workers, scheduler):
            stop(process)


@pytest.mark.slow
def test_a_lost_worker_on_a_real_cluster_leaves_every_recording_done_exactly_once(
    tmp_path: Path, recordings: Path, dask_cluster: tuple[str, list[subprocess.Popen]]
) -> None:
    address, workers = dask_cluster
    out = tmp_path / "out"
    batch = start(
        [sys.executable, "-m", "firmware_host.cli", "batch", str(recordings), "--out", str(out),
         "--scheduler", address, "--plots", "--no-progress"],
        tmp_path / "batch.log",
    )  # fmt: skip
    doomed, survivor = workers
    with distributed.Client(address, timeout="30s") as client:
        deadline = time.monotonic() + 180
        held: list[str] = []
        while time.monotonic() < deadline and batch.poll() is None:
            infos = client.scheduler_info(n_workers=-1)["workers"]
            doomed_address = next((a for a, w in infos.items() if w["name"] == "w0"), None)
            held = list(client.processing().get(doomed_address, []))
            if held and list(out.glob("results/*/result.json")):
                break
            time.sleep(0.05)
        assert batch.poll() is None and held, "the batch ended before a worker could be lost"
        os.killpg(doomed.pid, signal.SIGKILL)  # the machine is gone, mid-task
        doomed.wait(timeout=30)
    assert batch.wait(timeout=300) == 0, (tmp_path / "batch.log").read_text()[-3000:]

    rows = read_csv_table(out / "recordings.csv", RECORDING_COLUMNS)
    assert sorted((Path(r["recording"]).name, r["channel"]) for r in rows) == sorted(
        (f"night{n}.npy", channel) for n in range(RECORDINGS) for channel in ("left", "right")
    )
    assert {r["status"] for r in rows} == {"ok"}
    results = {
        r["key"]: r for r in (json.loads(p.read_text()) for p in out.glob("results/*/result.json"))
    }
    assert len(results) == RECORDINGS  # one result per recording: nothing done twice over
    assert all(r["status"] == "ok" for r in results.values())
    lost = [results[key.removeprefix("crampwatch-")] for key in held]
    assert any(r["worker"].endswith(f":{survivor.pid}") for r in lost)  # redone elsewhere
    for folder in {p.parent for p in out.glob("results/*/result.json")}:
        assert (folder / "night.png").is_file() and (folder / "events.jsonl").is_file()

    events = read_csv_table(out / "events.csv", EVENT_COLUMNS)
    for number in range(RECORDINGS):
        path = recordings / f"night{number}.npy"
        expected = [e["event_id"] for e in crampwatch.replay(path, envelope=False).events]
        assert [e["event_id"] for e in events if e["recording"] == str(path)] == expected


# Python started with Ctrl-C as a terminal gives it. A test run started in the background by a
# non-interactive shell ignores SIGINT, and a child inherits that (and Python then never turns
# SIGINT into KeyboardInterrupt): the batch would rightly ignore the test's Ctrl-C.
AS_FROM_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
]
# Enough recordings that the batch is still at work when the test sees its first result, even on
# a busy machine where the test's own polling is held up for a second or two.
INTERRUPTED_RECORDINGS = 24


@pytest.fixture
def many_recordings(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for number in range(INTERRUPTED_RECORDINGS):
        write_night(data, f"night{number}", number, cramp_at=60.0 + number)
    return data


@pytest.mark.slow
def test_ctrl_c_stops_the_batch_cleanly_and_the_next_run_goes_on(
    tmp_path: Path, many_recordings: Path
) -> None:
    recordings, total = many_recordings, INTERRUPTED_RECORDINGS
    out = tmp_path / "out"
    command = [*AS_FROM_A_TERMINAL, "-m", "firmware_host.cli", "batch", str(recordings), "--out",
               str(out), "--plots", "--workers", "2", "--no-progress"]  # fmt: skip
    batch = start(command, tmp_path / "first.log")
    deadline = time.monotonic() + 180
    while not list(out.glob("results/*/result.json")) and time.monotonic() < deadline:
        assert batch.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.05)
    os.killpg(batch.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    assert batch.wait(timeout=120) == 130
    log = (tmp_path / "first.log").read_text()
    assert "interrupted" in log and "Run the same command again" in log
    assert "Traceback" not in log
    assert group_is_gone(batch.pid), "worker processes outlived the batch"
    assert not list(out.rglob("*.partial"))
    assert not (out / "recordings.csv").exists()
    results = [json.loads(p.read_text()) for p in out.glob("results/*/result.json")]
    assert [r.get("error") for r in results if r["status"] != "ok"] == []
    done = len(results)
    assert 0 < done < total

    again = start(command, tmp_path / "second.log")
    code = again.wait(timeout=300)
    log = (tmp_path / "second.log").read_text()
    assert code == 0, log[-3000:]
    assert f"({done} already done earlier, {total - done} run now)" in log
    rows = read_csv_table(out / "recordings.csv", RECORDING_COLUMNS)
    assert len(rows) == 2 * total and {r["status"] for r in rows} == {"ok"}
