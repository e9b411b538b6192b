"""The README's shell examples run as written, in order, from a folder with nothing in it.

Every line of every ```sh block in README.md is a command a newcomer may copy. They run here in one
empty working folder (later lines use files that earlier lines make, as a reader's would), with
`./run.sh` standing for this clone's run.sh and a home folder of their own. Commands that serve
until stopped (the demo, the dashboard) are started, checked to answer, and stopped with SIGTERM.
A few cannot run here, each for the reason given in NOT_RUN; a test checks that this list names
only commands the README still has, so it cannot hide a broken one. A command expected to fail says
so in its comment (`# exit status 1: ...`), and must exit with exactly that status. Commands that
talk to `localhost:1883` find a broker there, as on a Debian machine where the mosquitto package
runs one (started here when the port is free).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_host.demo.local_broker import Mosquitto

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RUN_SH = REPO / "run.sh"

# Commands that do not run in this test, and why. Matched against the command's start.
NOT_RUN = {
    "./run.sh test": "it is the test suite this test is part of",
    "./run.sh bench": "benchmarks take minutes and install the peers; see the Benchmarks section",
    ".venv/bin/python -m benchmarks.": "benchmarks take minutes; see the Benchmarks section",
}
# Commands that serve until stopped: (the command's start, the port they serve on).
SERVERS = {
    "./run.sh demo": 8080,
    "./run.sh crampwatch dashboard": 8080,
}
TIMEOUT_S = 300.0


EXPECTED_STATUS = re.compile(r"exit status (\d+)")


@dataclass(frozen=True)
class Example:
    line: int
    command: str
    status: int = 0

    def starts_with(self, prefix: str) -> bool:
        return self.command == prefix or self.command.startswith(prefix + " ")


def readme_examples(text: str) -> list[Example]:
    """Each command of each ```sh block: comments dropped, continued lines joined."""
    examples: list[Example] = []
    in_block, pending, first, status = False, "", 0, 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            in_block = stripped == "```sh"
            continue
        if not in_block:
            continue
        line = _without_comment(raw).rstrip()
        if not line.strip():
            continue
        if not pending:
            first, status = number, 0
        expected = EXPECTED_STATUS.search(raw[len(line) :])
        if expected:
            status = int(expected.group(1))
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        examples.append(Example(first, (pending + line.strip()).strip(), status))
        pending = ""
    return examples


def _without_comment(line: str) -> str:
    """The line up to a `#` that starts a shell comment (after a blank, outside quotes)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


EXAMPLES = readme_examples(README.read_text(encoding="utf-8"))


def _reason_not_run(example: Example) -> str | None:
    for prefix, reason in NOT_RUN.items():
        if example.command.startswith(prefix):
            return reason
    return None


def _server_port(example: Example) -> int | None:
    for prefix, port in SERVERS.items():
        if example.starts_with(prefix) and "--terminal" not in example.command:
            match = re.search(r"--port\s+(\d+)", example.command)
            return int(match.group(1)) if match else port
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The reader's empty folder (and home), shared by every example in README order, with a
    broker on localhost:1883 unless one is there already."""
    folder = tmp_path_factory.mktemp("reader")
    (folder / "home").mkdir()
    broker = None
    if _port_is_free(1883):
        broker = Mosquitto(tmp_path_factory.mktemp("broker"), port=1883)
        broker.start()
    try:
        yield folder
    finally:
        if broker is not None:
            broker.stop()


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(workdir / "home")
    env.pop("CRAMPWATCH_EMG_DATA", None)  # a clone from the web has no shared recordings
    return env


def _shell_command(example: Example) -> str:
    command = example.command
    if command.startswith("./run.sh"):
        command = shlex.quote(str(RUN_SH)) + command[len("./run.sh") :]
    return command


def test_the_readme_has_examples_and_every_exception_is_still_in_it() -> None:
    assert len(EXAMPLES) >= 10
    assert any(e.status for e in EXAMPLES), "the batch example that fails on purpose is read"
    for prefix in (*NOT_RUN, *SERVERS):
        assert any(e.command.startswith(prefix) for e in EXAMPLES), (
            f"{prefix!r} is not in the README"
        )


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line}")
def test_the_readme_example_runs_as_written(example: Example, workdir: Path) -> None:
    reason = _reason_not_run(example)
    if reason:
        pytest.skip(f"{example.command}: {reason}")
    port = _server_port(example)
    if port is not None:
        _serve_then_stop(example, workdir, port)
        return
    result = subprocess.run(
        _shell_command(example), shell=True, cwd=workdir, env=_environment(workdir),
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == example.status, (
        f"README line {example.line}: {example.command}\n"
        f"exit {result.returncode}\n{result.stderr[-3000:]}"
    )


def _serve_then_stop(example: Example, workdir: Path, port: int) -> None:
    process = subprocess.Popen(
        _shell_command(example), shell=True, cwd=workdir, env=_environment(workdir),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        answered = _wait_for_page(f"http://127.0.0.1:{port}/", process, TIMEOUT_S)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, err = process.communicate()
    assert answered, f"README line {example.line}: {example.command} never answered\n{err[-3000:]}"
    assert process.returncode in (0, -signal.SIGTERM), err[-3000:]


def _wait_for_page(url: str, process: subprocess.Popen[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200
        except OSError:
            time.sleep(0.5)
    return False
