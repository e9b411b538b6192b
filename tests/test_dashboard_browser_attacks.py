"""The attacks a hostile page can make on a dashboard on the same machine, made by a real browser
(Debian's chromium driven by Playwright): a page on another loopback origin posts with
`mode: "no-cors"`, submits HTML forms into a hidden frame and tries a CORS request; a page whose
name is rebound to 127.0.0.1 (chromium's host resolver rules stand in for the attacker's DNS)
tries to read the data as its own origin. Nothing is changed, nothing is read, and the dashboard
counts what it refused."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import uvicorn

from dashboards.server import DashboardProcess, build
from firmware_host.demo.local_broker import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP rebind.test 127.0.0.1",
]  # fmt: skip

pytestmark = pytest.mark.slow

ATTACK_PAGE = """<!doctype html><html><body><iframe name="sink"></iframe><script>
const target = %(target)s;
const entry = JSON.stringify({factor: "water", amount: "9999 mL", time: "2026-11-20T20:00:00Z"});
const csv = "Date,Water (g),Magnesium (mg)\\n2026-11-19,1,1\\n";
const results = {};
function submitForm(action, enctype, name, value) {
  return new Promise((resolve) => {
    const form = document.createElement("form");
    Object.assign(form, {action: target + action, method: "post", enctype, target: "sink"});
    const input = document.createElement("input");
    Object.assign(input, {type: "hidden", name, value});
    form.appendChild(input);
    document.body.appendChild(form);
    document.querySelector("iframe").onload = () => resolve("submitted");
    form.submit();
  });
}
async function attack() {
  const tries = {
    no_cors_json_as_text: () => fetch(target + "/api/intake", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: entry}).then((r) => r.type),
    no_cors_import: () => fetch(target + "/api/intake/import", {method: "POST", mode: "no-cors",
      body: csv}).then((r) => r.type),
    cors_json: () => fetch(target + "/api/intake", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: entry}).then((r) => r.status),
    cors_read: () => fetch(target + "/api/intake").then((r) => r.text()),
    form_text_plain_import: () => submitForm("/api/intake/import", "text/plain",
      "Date,Water (g),Magnesium (mg)\\n2026-11-19,1,1\\nx", "y"),
    form_urlencoded: () => submitForm("/api/intake", "application/x-www-form-urlencoded",
      "factor", "water"),
  };
  for (const [name, run] of Object.entries(tries)) {
    try { results[name] = String(await run()); } catch (error) { results[name] = "blocked"; }
  }
  document.title = "done";
}
attack();
</script></body></html>"""

REBOUND_PAGE_SCRIPT = """async () => {
  const read = await fetch("/api/intake").then((r) => r.status + " " + r.headers.get("content-type"));
  const write = await fetch("/api/intake", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({factor: "water", amount: "1 mL"})}).then((r) => r.status);
  return {read, write};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: ./run.sh test installs the Debian package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[DashboardProcess, int]]:
    port = free_port()
    process = build(tmp_path / "dashboard.db", broker=None, tz=ZoneInfo("UTC"),
                    listen=("127.0.0.1", port))  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(process.app, host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield process, port
    server.should_exit = True
    thread.join(timeout=5)
    process.close()


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[int]:
    """A plain web server on another loopback port: another origin on the same machine."""
    root = tmp_path / "attacker"
    root.mkdir()
    port = free_port()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.root = root  # type: ignore[attr-defined]
    yield port
    server.shutdown()


def test_a_page_on_another_loopback_origin_can_neither_change_nor_read_anything(
    browser, dashboard, attacker: int, tmp_path: Path
) -> None:
    process, port = dashboard
    process.intake.add({"factor": "magnesium", "amount": "300 mg",
                        "time": "2026-11-20T20:00:00Z"}, "api")  # fmt: skip
    page_file = tmp_path / "attacker" / "attack.html"
    page_file.write_text(ATTACK_PAGE % {"target": json.dumps(f"http://127.0.0.1:{port}")})
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{attacker}/attack.html")
    page.wait_for_function("document.title === 'done'", timeout=30_000)
    results = page.evaluate("results")
    page.close()
    stored = [(e.factor, e.amount) for e in process.store.intakes()]
    assert stored == [("magnesium", 300.0)], results
    # the CORS attempts never got an answer the page could read
    assert results["cors_json"] == "blocked" and results["cors_read"] == "blocked"
    # the no-cors posts and the forms reached the dashboard and were refused there
    refused = process.app.state.dashboard.guard.refused
    assert refused["origin"] >= 4, (dict(refused), results)


def test_a_name_rebound_to_loopback_gets_nothing(browser, dashboard) -> None:
    process, port = dashboard
    process.intake.add({"factor": "magnesium", "amount": "300 mg",
                        "time": "2026-11-20T20:00:00Z"}, "api")  # fmt: skip
    page = browser.new_page()
    response = page.goto(f"http://rebind.test:{port}/intake")
    assert response is not None and response.status == 400
    assert "magnesium" not in page.content()
    outcome = page.evaluate(REBOUND_PAGE_SCRIPT)
    page.close()
    assert outcome["read"].startswith("400") and outcome["write"] == 400
    assert [(e.factor, e.amount) for e in process.store.intakes()] == [("magnesium", 300.0)]
    # the same browser on the dashboard's own name works
    own = browser.new_page()
    assert own.goto(f"http://127.0.0.1:{port}/intake").status == 200
    assert "magnesium" in own.content()
    own.close()
