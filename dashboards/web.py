"""The dashboard's web server: HTML pages and the JSON API they use (FastAPI, OpenAPI at
/openapi.json), live updates as server-sent events. Templates escape every text; scripts and
styles are served from the package (no CDN)."""

from __future__ import annotations

import asyncio
import hmac
import io
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, StrictFloat, StrictStr
from starlette.concurrency import run_in_threadpool

from dashboards import charts
from dashboards.analysis import frequent_cramps_notice
from dashboards.catalogue import IntakeError
from dashboards.guard import GuardSettings, HostPolicy, RequestGuard
from dashboards.intake_log import IntakeLog
from dashboards.live_feed import LiveFeed
from dashboards.queries import Queries, night_window, totals_by_night
from dsp import __version__

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "crampwatch_token"
MAX_RANGE_DAYS = 3660
PAGE_NIGHTS = 366  # a nights page shows at most a year
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2100, 12, 31)
IMPORT_PATH = "/api/intake/import"
IMPORT_MAX_BYTES = 10 * 1024 * 1024  # a Cronometer daily export of 40 years is about 10 MB


class IntakeIn(BaseModel):
    """An intake entry as the form or a client sends it."""

    factor: str = Field(max_length=60, description="catalogue key, alias, or a custom name")
    amount: StrictFloat | StrictStr | None = Field(
        default=None, description="a number, or text such as '250 mg' or '1.5 L'"
    )
    unit: str | None = Field(default=None, max_length=20)
    time: str | None = Field(
        default=None, max_length=40, description="ISO 8601; local time when no offset"
    )
    note: str | None = Field(default=None, max_length=500)
    entry_id: str | None = Field(default=None, max_length=64)


class Dashboard:
    """What the web app needs: the queries, the intake log, the live feed, settings."""

    def __init__(self, queries: Queries, intake: IntakeLog, feed: LiveFeed, *,
                 token: str | None = None, demo: bool = False,
                 hosts: HostPolicy | None = None,
                 broker_link: Callable[[], dict[str, Any]] | None = None) -> None:  # fmt: skip
        self.queries, self.intake, self.feed = queries, intake, feed
        self.token, self.demo = token, demo
        self.hosts = hosts or HostPolicy.for_listen()
        self.broker_link = broker_link  # the MQTT link's state for the device page
        self.guard: GuardSettings | None = None  # set by create_app


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
    templates = Jinja2Templates(directory=HERE / "templates")
    guard = GuardSettings(
        hosts=dashboard.hosts, bearer=dashboard.token,
        body_limits={IMPORT_PATH: IMPORT_MAX_BYTES}, api_types={IMPORT_PATH: frozenset({"text/csv"})},
    )  # fmt: skip
    dashboard.guard = guard
    templates.env.globals.update(demo=dashboard.demo, version=__version__,
                                 csrf_token=guard.csrf_token)  # fmt: skip
    _add_auth(app, dashboard)
    app.add_middleware(RequestGuard, settings=guard)  # outermost: hosts, forgery, body limits
    _add_api(app, dashboard)
    _add_pages(app, dashboard, templates)
    return app


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


# -- JSON API ----------------------------------------------------------------------------------


def _day(text: str | None, name: str) -> date | None:
    if text in (None, ""):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise HTTPException(
            400, f"{name} must be a date such as 2026-11-21, not {text!r}"
        ) from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise HTTPException(400, f"{name} must be between {EARLIEST_DAY} and {LATEST_DAY}")
    return day


def _range(first: str | None, last: str | None) -> tuple[date | None, date | None]:
    start, end = _day(first, "from"), _day(last, "to")
    if start and end and end < start:
        raise HTTPException(400, "'to' is before 'from'")
    if start and end and (end - start).days > MAX_RANGE_DAYS:
        raise HTTPException(400, f"ask for at most {MAX_RANGE_DAYS} days at a time")
    return start, end


def _page_range(q: Queries, start: date | None, end: date | None) -> tuple[date, date, str | None]:
    """A page's nights: the range asked for, at most a year of it (the latest), and a note
    saying so when it was cut; without a range, the year up to the last night."""
    end = end or (start + timedelta(days=PAGE_NIGHTS - 1) if start else None)
    end = end or q.last_night() or date.today()
    start = start or end - timedelta(days=PAGE_NIGHTS - 1)
    if (end - start).days < PAGE_NIGHTS:
        return start, end, None
    shown = end - timedelta(days=PAGE_NIGHTS - 1)
    note = (f"At most a year is shown at a time: {shown} to {end} of the {start} to {end} "
            "asked for; choose a later 'to' for the rest.")  # fmt: skip
    return shown, end, note


def _add_api(app: FastAPI, d: Dashboard) -> None:
    q = d.queries

    @app.exception_handler(IntakeError)
    async def intake_error(request: Request, error: IntakeError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    @app.get("/api/nights", summary="Nightly figures")
    def api_nights(
        first: Annotated[str | None, Query(alias="from", max_length=20)] = None,
        last: Annotated[str | None, Query(alias="to", max_length=20)] = None,
    ) -> list[dict[str, Any]]:
        start, end = _range(first, last)
        return [n.to_dict() for n in q.nights(start, end)]

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

    @app.get("/api/intake", summary="Intake entries, newest first")
    def api_intake(
        first: Annotated[str | None, Query(alias="from", max_length=20)] = None,
        last: Annotated[str | None, Query(alias="to", max_length=20)] = None,
    ) -> list[dict[str, Any]]:
        start, end = _range(first, last)
        lo = night_window(start, q.tz)[0].isoformat() if start else None
        hi = night_window(end, q.tz)[1].isoformat() if end else None
        return [vars(e) for e in q.store.intakes(lo, hi)]

    @app.post("/api/intake", status_code=201, summary="Log an intake entry")
    def api_add_intake(entry: Annotated[IntakeIn, Body()]) -> dict[str, Any]:
        stored, new = d.intake.add(entry.model_dump(exclude_none=True), "api")
        return {**stored.to_dict(), "new": new}

    @app.put("/api/intake/{entry_id}", summary="Change an intake entry")
    def api_put_intake(entry_id: str, entry: Annotated[IntakeIn, Body()]) -> dict[str, Any]:
        fields = entry.model_dump(exclude_none=True, exclude={"entry_id"})
        return d.intake.replace(entry_id[:80], fields).to_dict()

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


def _add_pages(app: FastAPI, d: Dashboard, templates: Jinja2Templates) -> None:
    q = d.queries

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"page": name, **context})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request) -> HTMLResponse:
        night = q.last_night()
        recent = q.nights(night - timedelta(days=13), night) if night else []
        notice = frequent_cramps_notice(q.nights())
        return page(request, "overview.html", night=night, recent=recent,
                    notice=notice, status=_status(d))  # fmt: skip

    @app.get("/nights", response_class=HTMLResponse, include_in_schema=False)
    def nights(request: Request, factor: str = "", first: str = "", last: str = "") -> HTMLResponse:
        start, end, range_note = _page_range(q, *_range(first or None, last or None))
        rows = q.nights(start, end)
        overlay_values = totals_by_night(q.daily_totals(), factor) if factor else {}
        chart = charts.bars(
            [n.night.isoformat() for n in rows],
            [n.cramps for n in rows],
            [overlay_values.get(n.night.isoformat()) for n in rows] if factor else None,
            "cramps per night",
            factor,
        )
        factors = sorted(q.factors_logged())
        return page(request, "nights.html", rows=rows, chart=chart, factor=factor,
                    factors=factors, range_note=range_note)  # fmt: skip

    @app.get("/events/{event_id}", response_class=HTMLResponse, include_in_schema=False)
    def event_page(request: Request, event_id: str) -> HTMLResponse:
        event = q.event(event_id[:128])
        if event is None:
            raise HTTPException(404, "no such event")
        trace = event.get("envelope") or {}
        chart = charts.envelope_trace(
            trace.get("t0_s", 0.0), trace.get("dt_s", 1.0), trace.get("uv", []),
            event["start_s"], event.get("end_s"), f"{event['kind']} on {event['channel']}",
        )  # fmt: skip
        return page(request, "event.html", event=event, chart=chart)

    @app.get("/intake", response_class=HTMLResponse, include_in_schema=False)
    def intake_page(request: Request) -> HTMLResponse:
        factors = [f.to_dict() for f in d.intake.catalogue]
        return page(request, "intake.html", entries=q.store.intakes()[:500], factors=factors)

    @app.get("/insights", response_class=HTMLResponse, include_in_schema=False)
    def insights_page(request: Request, include_incomplete: bool = False) -> HTMLResponse:
        result, nights, totals = q.insights(include_incomplete)
        charts_by_factor = _factor_charts(result, nights, totals)
        return page(request, "insights.html", result=result, charts=charts_by_factor,
                    include_incomplete=include_incomplete, n_nights=len(nights))  # fmt: skip

    @app.get("/status", response_class=HTMLResponse, include_in_schema=False)
    def status_page(request: Request) -> HTMLResponse:
        return page(request, "status.html", status=_status(d))

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    def report(request: Request, first: str = "", last: str = "") -> HTMLResponse:
        end = _day(last or None, "to") or q.last_night() or date.today()
        start = _day(first or None, "from") or end - timedelta(days=27)
        if end < start:
            raise HTTPException(400, "'to' is before 'from'")
        start, end, range_note = _page_range(q, start, end)
        rows = q.nights(start, end)
        result = q.insights()[0]
        return page(request, "report.html", rows=rows, result=result, first=start, last=end,
                    generated=datetime.now(q.tz), totals=_report_totals(rows),
                    range_note=range_note)  # fmt: skip

    @app.exception_handler(404)
    async def not_found(request: Request, error: Any) -> Any:
        if request.url.path.startswith("/api/"):
            detail = getattr(error, "detail", "not found")
            return JSONResponse({"error": detail}, status_code=404)
        return (
            RedirectResponse("/")
            if request.url.path == "/index.html"
            else HTMLResponse("<h1>Not found</h1><p><a href='/'>Overview</a></p>", status_code=404)
        )


def _status(d: Dashboard) -> dict[str, Any]:
    """Devices and ingest, and the dashboard's own link to the broker."""
    return {
        **d.queries.status(),
        "broker": d.broker_link() if d.broker_link else None,
        "requests_refused": dict(d.guard.refused) if d.guard else {},
    }


def _factor_charts(result: Any, nights: list[Any], totals: dict) -> dict[str, str]:
    """Per factor, intake that day against cramps that night (lag 0)."""
    complete = {n.night.isoformat(): n for n in nights if n.complete}
    out = {}
    for factor in sorted({r.factor for r in result.results}):
        per_night = totals_by_night(totals, factor)
        pairs = [(per_night[day], n.cramps) for day, n in complete.items() if day in per_night]
        out[factor] = charts.scatter(
            [p[0] for p in pairs], [p[1] for p in pairs], f"{factor} and cramps", factor
        )
    return out


def _report_totals(rows: list[Any]) -> dict[str, Any]:
    with_data = [n for n in rows if n.has_data]
    return {
        "nights": len(rows),
        "with_data": len(with_data),
        "complete": sum(n.complete for n in rows),
        "cramp_nights": sum(n.cramps > 0 for n in with_data),
        "cramps": sum(n.cramps for n in with_data),
        "cramp_minutes": round(sum(n.cramp_minutes for n in with_data), 1),
    }
