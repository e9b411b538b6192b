"""Request guarding, attacked at the HTTP layer: DNS rebinding (a forged Host), cross-site request
forgery (no-cors text/plain posts, HTML forms from another origin, an import from another origin),
content types, the CSRF token for page forms, and the body limit on every route."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from dashboards.guard import GuardSettings, HostPolicy, RequestGuard
from dashboards.server import build
from dashboards.web import IMPORT_MAX_BYTES

TZ = ZoneInfo("Europe/Berlin")
PORT = 8080
HERE = f"http://127.0.0.1:{PORT}"
ELSEWHERE = "http://127.0.0.1:9999"  # another loopback origin: same site, other port
EVIL = "http://rebind.example:8080"
ENTRY = {"factor": "magnesium", "amount": "300 mg", "time": "2026-11-20T20:00:00+01:00"}
CSV = "Date,Water (g),Magnesium (mg)\n2026-11-19,1500,250\n"


@pytest.fixture
def dashboard(tmp_path: Path):
    process = build(tmp_path / "d.db", broker=None, tz=TZ, listen=("127.0.0.1", PORT))
    yield process
    process.close()


@pytest.fixture
def client(dashboard) -> TestClient:
    return TestClient(dashboard.app, base_url=HERE)


def intake_rows(dashboard) -> list[tuple[str, float]]:
    return sorted((e.factor, e.amount) for e in dashboard.store.intakes())


# -- hosts (DNS rebinding) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/api/intake"), ("GET", "/api/status"), ("GET", "/api/live"),
     ("GET", "/static/app.js"), ("POST", "/api/intake"), ("DELETE", "/api/intake/x")],
)  # fmt: skip
def test_a_rebound_name_in_the_host_header_is_refused_on_every_route(
    dashboard, client: TestClient, method: str, path: str
) -> None:
    client.post("/api/intake", json=ENTRY)
    response = client.request(method, path, headers={"Host": "rebind.example:8080"},
                              json=ENTRY if method == "POST" else None)  # fmt: skip
    assert response.status_code == 400
    assert "does not answer to the host 'rebind.example:8080'" in response.text
    assert "magnesium" not in response.text
    assert intake_rows(dashboard) == [("magnesium", 300.0)]


@pytest.mark.parametrize(
    ("host", "answered"),
    [("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True),
     ("LOCALHOST:8080", True), ("127.0.0.1:9999", False), ("127.0.0.1", False),
     ("localhost.:8080", False), ("127.0.0.2:8080", False), ("", False), ("a:b:c", False),
     ("[::1]x", False), ("127.0.0.1:99999", False)],
)  # fmt: skip
def test_loopback_names_are_answered_with_the_listening_port_only(
    client: TestClient, host: str, answered: bool
) -> None:
    status = client.get("/api/status", headers={"Host": host}).status_code
    assert (status == 200) == answered


def test_a_dashboard_on_every_address_answers_ip_literals_its_names_and_allowed_hosts() -> None:
    policy = HostPolicy.for_listen("0.0.0.0", 8080, ["pi.lan", "dash.example.org:443"])
    assert policy.allows("192.168.1.20:8080") and policy.allows("[fe80::1]:8080")
    assert policy.allows("localhost:8080") and policy.allows("pi.lan:1234")
    assert policy.allows("dash.example.org", scheme="https")
    assert not policy.allows("192.168.1.20:9999")
    assert not policy.allows("rebind.example:8080") and not policy.allows("dash.example.org")


def test_a_dashboard_bound_to_one_address_answers_that_address() -> None:
    policy = HostPolicy.for_listen("192.168.1.20", 8080)
    assert policy.allows("192.168.1.20:8080")
    assert not policy.allows("localhost:8080") and not policy.allows("10.0.0.1:8080")


def test_allowed_host_from_the_command_line_is_checked(capsys: pytest.CaptureFixture) -> None:
    from firmware_host.cli import main

    assert main(["dashboard", "--broker", "none", "--allowed-host", "a:b:c"]) == 2
    assert "--allowed-host 'a:b:c'" in capsys.readouterr().err


# -- cross-site request forgery ----------------------------------------------------------------


def test_a_cross_origin_no_cors_post_with_text_plain_adds_nothing(
    dashboard, client: TestClient
) -> None:
    # What fetch(url, {method: "POST", mode: "no-cors", body: JSON.stringify(...)}) sends from a
    # page on another loopback port.
    browser = {"Origin": ELSEWHERE, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors",
               "Content-Type": "text/plain;charset=UTF-8"}  # fmt: skip
    response = client.post("/api/intake", content=json.dumps(ENTRY), headers=browser)
    assert response.status_code == 403
    # Even without any browser header (an old browser), text/plain is not the API's type.
    plain = client.post("/api/intake", content=json.dumps(ENTRY),
                        headers={"Content-Type": "text/plain"})  # fmt: skip
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]
    assert intake_rows(dashboard) == []


@pytest.mark.parametrize(
    "enctype",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
def test_a_form_posted_from_another_origin_changes_nothing(
    dashboard, client: TestClient, enctype: str
) -> None:
    client.post("/api/intake", json=ENTRY)
    entry_id = client.get("/api/intake").json()[0]["entry_id"]
    for path in ("/api/intake", "/api/intake/import", f"/api/intake/{entry_id}", "/intake"):
        for origin_headers in (
            {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": ELSEWHERE, "Sec-Fetch-Site": "same-site"},
            {"Origin": "null"},  # a sandboxed frame or a redirect
            {"Referer": "http://evil.example/page.html"},  # an older browser: no Origin
        ):
            response = client.post(path, content=b"factor=water&amount=9999",
                                   headers={"Content-Type": enctype, **origin_headers})  # fmt: skip
            assert response.status_code == 403, (path, origin_headers)
    assert (
        client.delete(f"/api/intake/{entry_id}", headers={"Origin": ELSEWHERE}).status_code == 403
    )
    assert intake_rows(dashboard) == [("magnesium", 300.0)]


def test_an_import_from_another_origin_can_neither_add_nor_overwrite_totals(
    dashboard, client: TestClient
) -> None:
    own = client.post("/api/intake/import", content=CSV, headers={"Content-Type": "text/csv",
                      "Origin": HERE, "Sec-Fetch-Site": "same-origin"})  # fmt: skip
    assert own.status_code == 200 and own.json() == {"entries": 2, "new": 2}
    forged = CSV.replace("1500,250", "1,1") + "2026-11-18,1,1\n"
    attempts = [
        {"Content-Type": "text/plain", "Origin": ELSEWHERE, "Sec-Fetch-Site": "same-site"},
        {"Content-Type": "text/csv", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ]  # fmt: skip
    for headers in attempts:
        assert client.post("/api/intake/import", content=forged, headers=headers).status_code in (
            403,
            415,
        )
    assert intake_rows(dashboard) == [("magnesium", 250.0), ("water", 1500.0)]


def test_the_pages_own_requests_pass(dashboard, client: TestClient) -> None:
    same = {"Origin": HERE, "Sec-Fetch-Site": "same-origin", "Referer": HERE + "/intake"}
    added = client.post("/api/intake", json=ENTRY, headers=same)
    assert added.status_code == 201
    entry_id = added.json()["entry_id"]
    changed = client.put(
        f"/api/intake/{entry_id}", json={**ENTRY, "amount": "400 mg"}, headers=same
    )
    assert changed.status_code == 200
    assert client.delete(f"/api/intake/{entry_id}", headers=same).status_code == 200
    # localhost and 127.0.0.1 are both this dashboard; the origin must match the host used
    local = TestClient(dashboard.app, base_url=f"http://localhost:{PORT}")
    ok = {"Origin": f"http://localhost:{PORT}", "Sec-Fetch-Site": "same-origin"}
    assert local.post("/api/intake", json=ENTRY, headers=ok).status_code == 201
    mixed = {"Origin": HERE, "Sec-Fetch-Site": "same-origin"}
    assert local.post("/api/intake", json=ENTRY, headers=mixed).status_code == 403


def test_a_bearer_token_stands_in_for_the_content_type(tmp_path: Path) -> None:
    process = build(tmp_path / "t.db", broker=None, tz=TZ, token="s3cret",
                    listen=("0.0.0.0", PORT))  # fmt: skip
    client = TestClient(process.app, base_url="http://192.168.1.20:8080")
    bearer = {"Authorization": "Bearer s3cret", "Content-Type": "application/octet-stream"}
    assert client.post("/api/intake/import", content=CSV, headers=bearer).status_code == 200
    wrong = {**bearer, "Authorization": "Bearer guess"}
    assert client.post("/api/intake/import", content=CSV, headers=wrong).status_code == 415
    process.close()


def _form_app(settings: GuardSettings) -> Starlette:
    async def save(request: Request) -> PlainTextResponse:
        form = await request.body()
        return PlainTextResponse(f"saved {len(form)} bytes")

    app = Starlette(routes=[Route("/intake/add", save, methods=["POST"])])
    app.add_middleware(RequestGuard, settings=settings)
    return app


def test_a_page_form_needs_the_csrf_token() -> None:
    settings = GuardSettings(hosts=HostPolicy.for_listen("127.0.0.1", PORT))
    client = TestClient(_form_app(settings), base_url=HERE)
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": HERE}
    good = f"factor=water&csrf_token={settings.csrf_token}"
    assert client.post("/intake/add", content=good, headers=form).text == f"saved {len(good)} bytes"
    assert client.post("/intake/add", content="factor=water&csrf_token=guess",
                       headers=form).status_code == 403  # fmt: skip
    assert client.post("/intake/add", content="factor=water", headers=form).status_code == 403
    many = "&".join(f"f{i}=1" for i in range(2000)) + f"&csrf_token={settings.csrf_token}"
    assert client.post("/intake/add", content=many, headers=form).status_code == 403
    header = {**form, "X-CSRF-Token": settings.csrf_token}
    assert client.post("/intake/add", content="factor=water", headers=header).status_code == 200


def test_refused_requests_are_counted_on_the_device_page(client: TestClient) -> None:
    client.get("/api/status", headers={"Host": "rebind.example:8080"})
    client.post("/api/intake", content="{}", headers={"Content-Type": "text/plain"})
    client.post("/api/intake", json=ENTRY, headers={"Origin": ELSEWHERE})
    assert client.get("/api/status").json()["requests_refused"] == {
        "host": 1, "content_type": 1, "origin": 1
    }  # fmt: skip
    assert (
        "Web requests refused: 1 (content type), 1 (host), 1 (origin)" in client.get("/status").text
    )


# -- bodies --------------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    dashboard, client: TestClient
) -> None:
    for path, limit in (("/api/intake", 64 * 1024), ("/api/intake/import", IMPORT_MAX_BYTES)):
        response = client.post(path, content=b"x" * (limit + 1),
                               headers={"Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 413 and f"{limit:,} bytes" in response.json()["error"]
    assert client.request("GET", "/", content=b"x" * 70_000).status_code == 413  # GET too
    assert intake_rows(dashboard) == []
