"""The dashboard's web server: HTML pages and the JSON API they use (FastAPI, OpenAPI at
/openapi.json), live updates as server-sent events. Pages are rendered on the server (the
figures, lists and sentences are in the HTML); charts are drawn in the browser by Chart.js from
data embedded in the page; live updates replace the parts that changed. Templates escape every
text; scripts and styles are served from the package (no CDN)."""

from __future__ import annotations

import asyncio
import hmac
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, Field, StrictFloat, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dashboards import page_data
from dashboards.analysis import frequent_cramps_notice
from dashboards.catalogue import IntakeError, UnknownFactorError
from dashboards.dialysis import DetailsError
from dashboards.dialysis_log import DialysisLog
from dashboards.formatting import channel_name, day_name, duration, hours_minutes, local, short_day
from dashboards.guard import CSRF_FIELD, GuardSettings, HostPolicy, RequestGuard
from dashboards.intake_log import IntakeLog
from dashboards.live_feed import LiveFeed
from dashboards.night_summaries import summary_sentence
from dashboards.queries import LabelError, Queries, iso, night_window
from dsp import __version__

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "crampwatch_token"
MAX_RANGE_DAYS = 366  # a year (a leap year's too): the most a page shows or the API answers
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2100, 12, 31)  # the dates a page or call takes
NIGHTS_PAGE_DAYS = 56  # the nights page's default period
REPORT_DAYS = 28  # the report's default period
REPORT_NIGHTS_LISTED = 62  # longer reports list weeks instead of nights
LABEL_FORM_PATH = "/labels"
MAX_FORM_BYTES = 4096  # the answer form's body limit (the request guard enforces it)
INTAKE_PAGE = 100  # entries per intake page
DEFAULT_INTAKE_LIST, MAX_INTAKE_LIST = 1000, 5000  # entries per API answer
MAX_NAME = 80
MAX_NOTES = 1000
IMPORT_PATH = "/api/intake/import"
IMPORT_MAX_BYTES = 10 * 1024 * 1024  # a Cronometer daily export of 40 years is about 10 MB


class IntakeIn(BaseModel):
    """An intake entry as the form or a client sends it."""

    factor: str = Field(max_length=60, description="catalogue key, alias, or a custom name")
    amount: StrictFloat | StrictStr | None = Field(
        default=None, description="a number, or text such as '250 mg', '1.5 L' or '1 glass'"
    )
    unit: str | None = Field(default=None, max_length=20)
    time: str | None = Field(
        default=None, max_length=40, description="ISO 8601; local time when no offset"
    )
    note: str | None = Field(default=None, max_length=500)
    entry_id: str | None = Field(default=None, max_length=64)
    new_factor: bool | None = Field(
        default=None,
        description="true: a name close to a known factor is meant as a new factor of its own",
    )


class LabelIn(BaseModel):
    """The patient's word on a detected cramp or a marker-button press."""

    target: str = Field(
        max_length=300, description="'event:<event id>' or 'marker:<device>@<time>'"
    )
    verdict: str | None = Field(
        default=None, description="cramp, not_cramp, missed_cramp; null takes the answer back"
    )


class Dashboard:
    """What the web app needs: the queries, the intake log, the live feed, settings."""

    def __init__(self, queries: Queries, intake: IntakeLog, feed: LiveFeed, *,
                 token: str | None = None, demo: bool = False,
                 hosts: HostPolicy | None = None,
                 broker_link: Callable[[], dict[str, Any]] | None = None,
                 sessions: DialysisLog | None = None) -> None:  # fmt: skip
        self.queries, self.intake, self.feed = queries, intake, feed
        self.token, self.demo = token, demo
        self.hosts = hosts or HostPolicy.for_listen()
        self.broker_link = broker_link  # the MQTT link's state for the device page
        self.guard: GuardSettings | None = None  # set by create_app
        self.sessions = sessions or DialysisLog(queries.store, queries.tz, feed)


@dataclass
class PageProblem(Exception):
    """A page request that cannot be answered as asked; shown as a styled page."""

    status: int
    title: str
    message: str
    hint: str = ""


def create_app(dashboard: Dashboard) -> FastAPI:
    app = FastAPI(
        title="crampwatch dashboard",
        version=__version__,
        description="Nights, cramp events, intake and insights from a crampwatch device.",
        docs_url=None,  # the interactive pages load scripts from a CDN; the UI works offline
        redoc_url=None,
    )
    app.state.dashboard = dashboard
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    guard = GuardSettings(
        hosts=dashboard.hosts, bearer=dashboard.token,
        body_limits={IMPORT_PATH: IMPORT_MAX_BYTES, LABEL_FORM_PATH: MAX_FORM_BYTES},
        api_types={IMPORT_PATH: frozenset({"text/csv"})},
    )  # fmt: skip
    dashboard.guard = guard
    templates = _templates(dashboard, guard)
    _add_auth(app, dashboard)
    app.add_middleware(RequestGuard, settings=guard)  # outermost: hosts, forgery, body limits
    _add_errors(app, templates)
    _add_api(app, dashboard)
    _add_pages(app, dashboard, templates)
    from dashboards.session_pages import add_session_api, add_session_pages

    add_session_api(app, dashboard)
    add_session_pages(app, dashboard, templates)
    return app


def _templates(dashboard: Dashboard, guard: GuardSettings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    tz = dashboard.queries.tz
    env = templates.env
    env.globals.update(demo=dashboard.demo, version=__version__,
                       csrf_input=lambda: _csrf_input(guard), tz_name=str(getattr(tz, "key", tz)))  # fmt: skip
    env.filters.update(
        duration=duration,
        hours_minutes=hours_minutes,
        day_name=day_name,
        short_day=short_day,
        channel=channel_name,
        clock=lambda t: _fmt(local(t, tz), "%H:%M"),
        clock_s=lambda t: _fmt(local(t, tz), "%H:%M:%S"),
        when=lambda t: _fmt(local(t, tz), "%Y-%m-%d %H:%M"),
        short_day_of=lambda t: _fmt(local(t, tz), "%a %-d %b"),
        uv=lambda v: "" if v is None else f"{v:.0f} µV",
    )
    return templates


def _fmt(moment: datetime | None, pattern: str) -> str:
    return moment.strftime(pattern) if moment is not None else ""


# -- form tokens --------------------------------------------------------------------------------
# A page's form that changes something (the patient's answer, POST /labels) carries the request
# guard's CSRF token as the field the guard checks (`dashboards.guard`). Scripts change things
# through the JSON API only, which the guard protects by origin and content type instead.


def _csrf_input(guard: GuardSettings) -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, guard.csrf_token)


# -- authentication ----------------------------------------------------------------------------


def _add_auth(app: FastAPI, dashboard: Dashboard) -> None:
    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        if dashboard.token is None or request.url.path.startswith("/static/"):
            return await call_next(request)
        given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
        if not hmac.compare_digest(given.encode(), dashboard.token.encode()):
            return JSONResponse(
                {"error": "a token is needed: open the dashboard with ?token=... or send "
                 "'Authorization: Bearer ...'"},
                status_code=401,
            )  # fmt: skip
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
        return response


# -- errors: JSON for the API, a styled page that says what to do for everything else ----------


def _add_errors(app: FastAPI, templates: Jinja2Templates) -> None:
    def error_page(request: Request, problem: PageProblem) -> HTMLResponse:
        return templates.TemplateResponse(
            request, "error.html", {"page": "error.html", "problem": problem},
            status_code=problem.status,
        )  # fmt: skip

    @app.exception_handler(PageProblem)
    async def page_problem(request: Request, problem: PageProblem) -> HTMLResponse:
        return error_page(request, problem)

    @app.exception_handler(IntakeError)
    async def intake_error(request: Request, error: IntakeError) -> JSONResponse:
        body: dict[str, Any] = {"error": str(error)}
        if isinstance(error, UnknownFactorError):
            body["suggestions"] = list(error.suggestions)
        return JSONResponse(body, status_code=400)

    @app.exception_handler(LabelError)
    async def label_error(request: Request, error: LabelError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(DetailsError)
    async def details_error(request: Request, error: DetailsError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(error)}, status_code=400)
        problem = PageProblem(400, "That could not be saved", f"{error}.",
                              "Go back, correct it and save again.")  # fmt: skip
        return error_page(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/") or request.url.path.startswith("/static/"):
            return JSONResponse({"error": error.detail}, status_code=error.status_code)
        if error.status_code == 404:
            problem = PageProblem(404, "Not found", "There is no page at this address.",
                                  "Go to the overview, or pick a night from the list of nights.")  # fmt: skip
        else:
            problem = PageProblem(error.status_code, "Something was wrong with the request",
                                  str(error.detail))  # fmt: skip
        return error_page(request, problem)


# -- JSON API ----------------------------------------------------------------------------------


class BadDay(ValueError):
    """A date a page or call cannot take; the text says why."""


def parse_day(text: str, name: str) -> date:
    """A date between EARLIEST_DAY and LATEST_DAY (BadDay otherwise): no night outside them can
    have been recorded, and a range reaching them would only be empty."""
    try:
        day = date.fromisoformat(text[:20])
    except ValueError:
        raise BadDay(f"{name} must be a date such as 2026-11-21, not {text[:40]!r}") from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise BadDay(f"{name} must be between {EARLIEST_DAY} and {LATEST_DAY}, not {day}")
    return day


def _day(text: str | None, name: str) -> date | None:
    if text in (None, ""):
        return None
    try:
        return parse_day(text, name)
    except BadDay as error:
        raise HTTPException(400, str(error)) from None


def _range(first: str | None, last: str | None) -> tuple[date | None, date | None]:
    start, end = _day(first, "from"), _day(last, "to")
    if start and end and end < start:
        raise HTTPException(400, "'to' is before 'from'")
    if start and end and (end - start).days >= MAX_RANGE_DAYS:
        raise HTTPException(400, f"ask for at most {MAX_RANGE_DAYS} nights at a time")
    return start, end


def _bounded(q: Queries, start: date | None, end: date | None) -> tuple[date | None, date | None]:
    """A range with an open end closed at the data, and at most MAX_RANGE_DAYS long (the
    latest year when nothing is asked)."""
    if start is None and end is None:
        end = q.last_night()
        if end is None:
            return None, None
        start = max(q.first_night() or end, end - timedelta(days=MAX_RANGE_DAYS - 1))
    elif end is None:
        end = min(max(start, q.last_night() or start), start + timedelta(days=MAX_RANGE_DAYS - 1))  # type: ignore[operator]
    elif start is None:
        start = max(min(end, q.first_night() or end), end - timedelta(days=MAX_RANGE_DAYS - 1))
    return start, end


def _add_api(app: FastAPI, d: Dashboard) -> None:
    q = d.queries

    @app.get("/api/nights", summary="Nightly figures (at most a year; default the latest year)")
    def api_nights(
        first: Annotated[str | None, Query(alias="from", max_length=20)] = None,
        last: Annotated[str | None, Query(alias="to", max_length=20)] = None,
    ) -> JSONResponse:
        start, end = _bounded(q, *_range(first, last))
        if start is None:
            return JSONResponse([])
        return JSONResponse(q.summaries.dicts(start, end))

    @app.get("/api/nights/{night}", summary="One night: summary, events per calf, presses")
    def api_night(night: str) -> dict[str, Any]:
        day = _day(night[:20], "night")
        assert day is not None
        return page_data.night_json(q, day)

    @app.get("/api/events", summary="A night's events, signal problems and marker presses")
    def api_events(night: Annotated[str | None, Query(max_length=20)] = None) -> dict[str, Any]:
        day = _day(night, "night") or q.last_night()
        if day is None:
            return {"night": None, "events": [], "problems": [], "markers": []}
        return q.night_detail(day)

    @app.get("/api/events/{event_id}", summary="One event with its envelope trace")
    def api_event(event_id: str) -> dict[str, Any]:
        event = q.event(event_id[:128])
        if event is None:
            raise HTTPException(404, f"no event {event_id[:128]!r}")
        return event

    @app.get("/api/labels", summary="The patient's word on cramps and marker presses")
    def api_labels(night: Annotated[str | None, Query(max_length=20)] = None) -> list[dict]:
        return q.labels(_day(night, "night"))

    @app.post("/api/labels", summary="Say whether a detection was a cramp, or a press a missed one")
    def api_label(label: Annotated[LabelIn, Body()]) -> dict[str, Any]:
        verdict = None if label.verdict in (None, "", "none") else label.verdict
        result = q.set_label(label.target, verdict)
        d.feed.publish("label")
        return result

    @app.get(
        "/api/nights/{night}/truth.csv",
        summary="The patient's word as ground truth for `crampwatch evaluate` (CSV)",
        response_class=PlainTextResponse,
    )
    def api_truth(night: str) -> PlainTextResponse:
        day = _day(night[:20], "night")
        assert day is not None
        export = q.research_export(day)
        return PlainTextResponse(
            page_data.truth_csv(export), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="truth-{day}.csv"'},
        )  # fmt: skip

    @app.get(
        "/api/nights/{night}/detections.jsonl",
        summary="The detections the patient answered for, for `crampwatch evaluate` (JSON lines)",
        response_class=PlainTextResponse,
    )
    def api_detections(night: str) -> PlainTextResponse:
        day = _day(night[:20], "night")
        assert day is not None
        export = q.research_export(day)
        return PlainTextResponse(
            page_data.detections_jsonl(export, q.night(day)), media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="detections-{day}.jsonl"'},
        )  # fmt: skip

    @app.get("/api/intake", summary="Intake entries, newest first")
    def api_intake(
        first: Annotated[str | None, Query(alias="from", max_length=20)] = None,
        last: Annotated[str | None, Query(alias="to", max_length=20)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_INTAKE_LIST)] = DEFAULT_INTAKE_LIST,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> JSONResponse:
        start, end = _range(first, last)
        lo = iso(night_window(start, q.tz)[0]) if start else None
        hi = iso(night_window(end, q.tz)[1]) if end else None
        entries = q.intake_entries(lo, hi, limit=limit, offset=offset)
        return JSONResponse([vars(e) for e in entries])

    @app.get("/api/intake/check", summary="What an entry would be stored as (nothing is stored)")
    def api_check_intake(
        factor: Annotated[str, Query(max_length=60)],
        amount: Annotated[str | None, Query(max_length=40)] = None,
        unit: Annotated[str | None, Query(max_length=20)] = None,
    ) -> dict[str, Any]:
        return d.intake.check({"factor": factor, "amount": amount or None, "unit": unit or None})

    @app.post("/api/intake", status_code=201, summary="Log an intake entry")
    def api_add_intake(entry: Annotated[IntakeIn, Body()]) -> dict[str, Any]:
        payload = entry.model_dump(exclude_none=True)
        stored, new = d.intake.add(payload, "api")
        return {**stored.to_dict(), "new": new, "shown": d.intake.describe(payload, stored)}

    @app.put("/api/intake/{entry_id}", summary="Change an intake entry")
    def api_put_intake(entry_id: str, entry: Annotated[IntakeIn, Body()]) -> dict[str, Any]:
        fields = entry.model_dump(exclude_none=True, exclude={"entry_id"})
        stored = d.intake.replace(entry_id[:80], fields)
        return {**stored.to_dict(), "shown": d.intake.describe(fields, stored)}

    @app.delete("/api/intake/{entry_id}", summary="Delete an intake entry")
    def api_delete_intake(entry_id: str) -> dict[str, Any]:
        if not d.intake.delete(entry_id[:80]):
            raise HTTPException(404, f"no intake entry {entry_id[:80]!r}")
        return {"deleted": entry_id[:80]}

    @app.post(
        "/api/intake/import",
        summary="Import a Cronometer daily-nutrition CSV (the file as the request body)",
        openapi_extra={
            "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}},
                            "required": True}
        },
    )  # fmt: skip
    async def api_import(request: Request) -> dict[str, Any]:
        body = await request.body()  # at most IMPORT_MAX_BYTES: the guard stops it there
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HTTPException(400, "the file is not UTF-8 text (a CSV export)") from None
        # Parsing and storing take a while for a big file: off the event loop, so that every
        # other request is answered meanwhile.
        total, new = await run_in_threadpool(d.intake.import_cronometer, io.StringIO(text))
        return {"entries": total, "new": new}

    @app.get("/api/factors", summary="The factor catalogue")
    def api_factors() -> list[dict[str, Any]]:
        return [f.to_dict() for f in d.intake.catalogue]

    @app.get("/api/insights", summary="Intake against cramps, per factor and lag")
    def api_insights(include_incomplete: bool = False) -> dict[str, Any]:
        return q.insights(include_incomplete)[0].to_dict()

    @app.get("/api/status", summary="Devices and ingest")
    def api_status() -> dict[str, Any]:
        return _status(d)

    @app.get("/api/live", summary="Server-sent events: what changed (event, state, intake, ...)")
    async def api_live(request: Request) -> StreamingResponse:
        async def stream() -> Any:
            seen = d.feed.latest
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                changes = await asyncio.to_thread(d.feed.wait, seen, 1.0)
                if changes:
                    seen = changes[-1][0]
                    kinds = sorted({kind for _, kind in changes})
                    yield f"id: {seen}\ndata: {json.dumps(kinds)}\n\n"
                else:
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")


# -- pages -------------------------------------------------------------------------------------


def _page_day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return parse_day(text, name)
    except BadDay as error:
        raise PageProblem(
            400, "That is not a date this dashboard can show", f"{error}.",
            "Pick the dates with the date fields, or leave them empty for the default period.",
        ) from None  # fmt: skip


def _page_range(
    first: str, last: str, default_days: int, q: Queries
) -> tuple[date, date, str | None]:
    """A page's period: both ends checked and in order; without them, `default_days` up to
    the last night. A period longer than MAX_RANGE_DAYS is cut to its latest year, with a note
    that says so (None when nothing was cut)."""
    start, end = _page_day(first, "'from'"), _page_day(last, "'to'")
    if start and end and end < start:
        raise PageProblem(
            400, "The dates are the wrong way round",
            f"'from' ({start}) is after 'to' ({end}).", "Swap the two dates and try again.",
        )  # fmt: skip
    end = end or (start + timedelta(days=default_days - 1) if start else None) or q.last_night()
    end = end or date.today()
    if start is None:  # the default period, from the first recorded night at the earliest
        start = max(end - timedelta(days=default_days - 1), min(q.first_night() or end, end))
    if (end - start).days < MAX_RANGE_DAYS:
        return start, end, None
    shown = end - timedelta(days=MAX_RANGE_DAYS - 1)
    note = (f"At most a year is shown at a time: {shown} to {end} of the {start} to {end} "
            f"asked for; choose an earlier 'to' for the nights before {shown}.")  # fmt: skip
    return shown, end, note


def _local_path(text: str) -> str:
    """A path on this site to go back to (never another site)."""
    return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/"


def _add_pages(app: FastAPI, d: Dashboard, templates: Jinja2Templates) -> None:
    q = d.queries

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, {"page": template, **context})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, night: str = "") -> Response:
        if night:
            day = _page_day(night, "night")
            return RedirectResponse(f"/nights/{day}", status_code=301)
        last = q.last_night()
        today = datetime.now(q.tz).date()
        recent = q.nights(last - timedelta(days=13), last) if last else []
        data = q.night_page(last) if last else None
        return page(
            request, "overview.html", data=data,
            timeline=page_data.timeline(data, q.tz) if data else None,
            sentence=summary_sentence(recent[-1] if recent else None, today),
            notice=frequent_cramps_notice(recent), status=_status(d), recent=recent,
            open_sessions=q.sessions.open_sessions(),
            recent_chart=page_data.nights_chart(recent, None, None, q.tz),
        )  # fmt: skip

    @app.get("/nights", response_class=HTMLResponse, include_in_schema=False)
    def nights(request: Request, factor: str = "", first: str = "", last: str = "") -> HTMLResponse:
        start, end, range_note = _page_range(first, last, NIGHTS_PAGE_DAYS, q)
        rows = q.nights(start, end)
        factors = sorted(q.factors_logged())
        factor = factor if factor in factors else ""
        overlay = page_data.overlay(q, factor) if factor else None
        return page(
            request, "nights.html", rows=rows, factor=factor, factors=factors, first=start,
            last=end, chart=page_data.nights_chart(rows, factor or None, overlay, q.tz),
            earlier=start - timedelta(days=NIGHTS_PAGE_DAYS), one_day=timedelta(days=1),
            range_note=range_note,
        )  # fmt: skip

    @app.get("/nights/{night}", response_class=HTMLResponse, include_in_schema=False)
    def night_page(request: Request, night: str) -> HTMLResponse:
        day = _page_day(night, "The night")
        assert day is not None
        data = q.night_page(day)
        return page(request, "night.html", data=data,
                    timeline=page_data.timeline(data, q.tz), back=f"/nights/{day}")  # fmt: skip

    @app.get("/events/{event_id}", response_class=HTMLResponse, include_in_schema=False)
    def event_page(request: Request, event_id: str) -> HTMLResponse:
        data = q.event_page(event_id[:128])
        if data is None:
            raise PageProblem(404, "No such cramp or movement",
                              "There is no event with this id (it may be from another dashboard).",
                              "Open a night from the list of nights and pick the cramp there.")  # fmt: skip
        return page(request, "event.html", data=data, event=data["event"],
                    chart=page_data.envelope_chart(data, q.tz))  # fmt: skip

    @app.post(LABEL_FORM_PATH, include_in_schema=False)
    async def label_form(request: Request) -> RedirectResponse:
        body = await request.body()  # at most MAX_FORM_BYTES, with the CSRF token: the guard checks
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        verdict = fields.get("verdict") or None
        try:
            q.set_label(fields.get("target", ""), None if verdict == "none" else verdict)
        except LabelError as error:
            raise PageProblem(400, "That answer could not be saved", str(error),
                              "Go back and use the buttons beside the cramp.") from None  # fmt: skip
        d.feed.publish("label")
        back = _local_path(fields.get("back", "/"))
        return RedirectResponse(back, status_code=303)

    @app.get("/intake", response_class=HTMLResponse, include_in_schema=False)
    def intake_page(request: Request, page_number: Annotated[int, Query(alias="page", ge=1,
                    le=100_000)] = 1) -> HTMLResponse:  # fmt: skip
        factors = [f.to_dict() for f in d.intake.catalogue]
        entries = q.intake_entries(limit=INTAKE_PAGE, offset=(page_number - 1) * INTAKE_PAGE)
        more = q.store.intake_count() > page_number * INTAKE_PAGE
        return page(request, "intake.html", entries=entries, factors=factors,
                    page_number=page_number, more=more,
                    labels={f["key"]: f["label"] for f in factors},
                    popular=page_data.popular_factors(entries, factors))  # fmt: skip

    @app.get("/insights", response_class=HTMLResponse, include_in_schema=False)
    def insights_page(request: Request, include_incomplete: bool = False) -> HTMLResponse:
        result, nights, totals = q.insights(include_incomplete)
        charts = page_data.factor_charts(result, nights, totals, include_incomplete, q)
        return page(request, "insights.html", result=result, charts=charts,
                    include_incomplete=include_incomplete)  # fmt: skip

    @app.get("/status", response_class=HTMLResponse, include_in_schema=False)
    def status_page(request: Request) -> HTMLResponse:
        return page(request, "status.html", status=_status(d))

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    def report(request: Request, first: str = "", last: str = "", name: str = "",
               notes: str = "") -> HTMLResponse:  # fmt: skip
        start, end, range_note = _page_range(first, last, REPORT_DAYS, q)
        rows = q.nights(start, end)
        return page(
            request, "report.html", rows=rows, first=start, last=end,
            name=name[:MAX_NAME], notes=notes[:MAX_NOTES], generated=datetime.now(q.tz),
            result=q.insights()[0], totals=page_data.report_totals(rows),
            cramps=q.cramps_between(start, end), intake=q.intake_summary(start, end),
            chart=page_data.nights_chart(rows, None, None, q.tz),
            notice=frequent_cramps_notice(rows),
            weeks=page_data.weeks(rows) if len(rows) > REPORT_NIGHTS_LISTED else None,
            range_note=range_note, dialysis=q.sessions.report(start, end),
        )  # fmt: skip

    @app.get("/index.html", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/")


def _status(d: Dashboard) -> dict[str, Any]:
    """Devices and ingest, the dashboard's own link to the broker, and the web requests the
    guard refused."""
    return {
        **d.queries.status(),
        "broker": d.broker_link() if d.broker_link else None,
        "requests_refused": dict(d.guard.refused) if d.guard else {},
    }
