"""The named sessions' pages (dialysis, ...) and their JSON API: the list of sessions with the
analysis across them and the lab results; one session's page with its timeline (the night page's
parts), its figures and its details form; starting and ending a session.

Forms post to the pages with the request guard's CSRF token and work without a script; the API
takes JSON only (`dashboards.guard`). Every change goes through `DialysisLog`: the same checks as
MQTT and the command line. A form that does not pass them is shown again with what was typed and
what to correct.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from dashboards import page_data
from dashboards.dialysis import (
    ANALYTES,
    EARLY_END_REASONS,
    DetailsError,
    SessionDetails,
    reading_lines,
    readings_from_lines,
    session_time,
)
from dashboards.named_sessions import NamedSession
from dashboards.session_analysis import SESSION_FACTORS
from dashboards.validation import Invalid, strict_json
from dashboards.web import MAX_RANGE_DAYS, Dashboard, PageProblem, _page_day, _range
from messaging.sessions import DIALYSIS

SESSIONS_PAGE_DAYS = 84  # the list's default period: twelve weeks
LABS_LISTED = 12
FORM_TEXT_FIELDS = ("start", "end", "pre_weight_kg", "post_weight_kg", "uf_volume_ml",
                    "dialysate_sodium_mmol_l", "ended_early_reason", "note")  # fmt: skip


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]  # checked by `dashboards.dialysis` (strict JSON)


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = strict_json(body)
    except Invalid as error:
        raise DetailsError(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise DetailsError("send a JSON object")
    return value


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()  # bounded by the request guard
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=200)
    return {key: values[0] for key, values in fields.items()}


def session_json(row: dict[str, Any]) -> dict[str, Any]:
    """A session in the API: its times, details, figures and cramp summary."""
    return {**row["session"].to_dict(), "summary": row["summary"].to_dict(),
            "figures": row["figures"].to_dict()}  # fmt: skip


def details_payload(fields: dict[str, str], session: NamedSession | None, tz: Any) -> dict:
    """The details form as a details payload (an empty field clears what was logged)."""
    payload: dict[str, Any] = {
        name: (fields[name].strip() or None) for name in FORM_TEXT_FIELDS if name in fields
    }
    payload["ended_early"] = fields.get("ended_early") == "yes"
    lines = fields.get("blood_pressure", "")
    if lines.strip():
        start = (
            session_time(payload["start"], "start", tz, None)
            if payload.get("start")
            else (session.span.origin if session is not None else None)
        )
        if start is None:
            raise DetailsError("give the session's start, so that the readings' times have a day")
        local = start.astimezone(tz)
        payload["blood_pressure"] = readings_from_lines(lines, local.date(), tz, local.time())
    else:
        payload["blood_pressure"] = None
    return payload


def form_values(details: SessionDetails, tz: Any) -> dict[str, str]:
    """What the details form shows for stored details."""

    def local(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if moment else ""

    def number(value: float | None) -> str:
        return f"{value:g}" if value is not None else ""

    return {
        "start": local(details.start), "end": local(details.end),
        "pre_weight_kg": number(details.pre_weight_kg),
        "post_weight_kg": number(details.post_weight_kg),
        "uf_volume_ml": number(details.uf_volume_ml),
        "dialysate_sodium_mmol_l": number(details.dialysate_sodium_mmol_l),
        "blood_pressure": reading_lines(details, tz),
        "ended_early": "yes" if details.ended_early else "",
        "ended_early_reason": details.ended_early_reason, "note": details.note,
    }  # fmt: skip


def add_session_api(app: FastAPI, d: Dashboard) -> None:
    q, log = d.queries, d.sessions
    json_body = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}},
                                 "required": True}}  # fmt: skip

    @app.get("/api/sessions", summary="Named sessions (dialysis, ...) with figures, newest first")
    def api_sessions(
        first: Annotated[str | None, Query(alias="from", max_length=20)] = None,
        last: Annotated[str | None, Query(alias="to", max_length=20)] = None,
    ) -> JSONResponse:
        start, end = _range(first, last)
        return JSONResponse([session_json(row) for row in q.sessions.rows(start, end)])

    @app.get("/api/sessions/insights", summary="Cramps per session against the factors")
    def api_session_insights() -> dict[str, Any]:
        return q.sessions.insights().to_dict()

    @app.post("/api/sessions/start", status_code=201, openapi_extra=json_body,
              summary="Start a named session now (and tell the devices)")  # fmt: skip
    def api_start(body: RawBody) -> dict[str, Any]:
        payload = _json_body(body)
        unknown = sorted(str(k)[:40] for k in payload if k != "session_kind")
        if unknown:
            raise DetailsError(f"unknown field(s) {', '.join(unknown)}; allowed: session_kind")
        session_id, told = log.start(payload.get("session_kind") or DIALYSIS, "api")
        return {"session_id": session_id, "devices_told": told}

    @app.get("/api/sessions/{session_id}", summary="One session: figures, details, events")
    def api_session(session_id: str) -> dict[str, Any]:
        data = q.sessions.data()
        i = data.index(session_id[:64])
        if i is None:
            raise HTTPException(404, f"no session {session_id[:64]!r}")
        page = q.session_page(session_id[:64])
        assert page is not None
        keep = ("events", "markers", "long_presses", "problems", "notes", "in_progress")
        return {**session_json(q.sessions.row(data, i)), **{k: page[k] for k in keep},
                "labs": {k: v.to_dict() for k, v in page["labs"].items()}}  # fmt: skip

    @app.post("/api/sessions", status_code=201, openapi_extra=json_body,
              summary="Log a session's details: a new session (with its start), or more about "
              "one (with its session_id)")  # fmt: skip
    def api_log_session(body: RawBody) -> dict[str, Any]:
        session_id, details, new = log.log(body, "api")
        return {"session_id": session_id, "new": new, "details": details.to_dict()}

    @app.put("/api/sessions/{session_id}", openapi_extra=json_body,
             summary="Change a session's details (fields left out are kept, null clears)")  # fmt: skip
    def api_put_session(session_id: str, body: RawBody) -> dict[str, Any]:
        payload = _json_body(body)
        if payload.get("session_id", session_id) != session_id:
            raise DetailsError("the session_id in the body differs from the address")
        if q.store.named_session_rows(session_id=session_id[:64]) == []:
            raise HTTPException(404, f"no session {session_id[:64]!r}")
        _id, details, _new = log.log({**payload, "session_id": session_id}, "api")
        return {"session_id": session_id, "details": details.to_dict()}

    @app.post("/api/sessions/{session_id}/end", openapi_extra=json_body,
              summary="End a session now (and tell the devices)")  # fmt: skip
    def api_end(session_id: str, body: RawBody) -> dict[str, Any]:
        if _json_body(body):
            raise DetailsError("ending a session takes no fields: send {}")
        told = log.end(session_id[:64], "api")
        return {"session_id": session_id, "devices_told": told}

    @app.delete("/api/sessions/{session_id}", summary="Delete a session nothing recorded")
    def api_delete_session(session_id: str) -> dict[str, Any]:
        log.delete(session_id[:64])
        return {"deleted": session_id[:64]}

    @app.get("/api/labs", summary="Lab results (calcium, phosphorus, potassium, magnesium)")
    def api_labs() -> list[dict[str, Any]]:
        return [lab.to_dict() for lab in q.sessions.labs()]

    @app.post("/api/labs", status_code=201, openapi_extra=json_body, summary="Log a lab result")
    def api_add_lab(body: RawBody) -> dict[str, Any]:
        lab, new = log.add_lab(body, "api")
        return {**lab.to_dict(), "new": new}

    @app.delete("/api/labs/{entry_id}", summary="Delete a lab result")
    def api_delete_lab(entry_id: str) -> dict[str, Any]:
        if not log.delete_lab(entry_id[:80]):
            raise HTTPException(404, f"no lab result {entry_id[:80]!r}")
        return {"deleted": entry_id[:80]}


def _session_range(first: str, last: str, tz: Any) -> tuple[date, date, str | None]:
    start, end = _page_day(first, "'from'"), _page_day(last, "'to'")
    if start and end and end < start:
        raise PageProblem(400, "The dates are the wrong way round",
                          f"'from' ({start}) is after 'to' ({end}).",
                          "Swap the two dates and try again.")  # fmt: skip
    end = end or (start + timedelta(days=SESSIONS_PAGE_DAYS - 1) if start else None)
    end = end or datetime.now(tz).date()
    start = start or end - timedelta(days=SESSIONS_PAGE_DAYS - 1)
    if (end - start).days < MAX_RANGE_DAYS:
        return start, end, None
    shown = end - timedelta(days=MAX_RANGE_DAYS - 1)
    return shown, end, f"At most a year is shown at a time: {shown} to {end}."


def add_session_pages(app: FastAPI, d: Dashboard, templates: Jinja2Templates) -> None:
    q, log, tz = d.queries, d.sessions, d.queries.tz

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, template, {"page": template, **context},
                                          status_code=status)  # fmt: skip

    def list_page(request: Request, first: str = "", last: str = "", status: int = 200,
                  **extra: Any) -> HTMLResponse:  # fmt: skip
        start, end, range_note = _session_range(first, last, tz)
        data = q.sessions.data()
        insights = q.sessions.insights()
        return page(
            request, "sessions.html", status, rows=q.sessions.rows(start, end), first=start,
            last=end, range_note=range_note, insights=insights,
            hours_chart=page_data.hours_chart(insights), labs=data.labs[::-1][:LABS_LISTED],
            latest=q.sessions.latest_labs(), analytes=ANALYTES, factors=SESSION_FACTORS,
            open_sessions=q.sessions.open_sessions(), reasons=EARLY_END_REASONS,
            earlier=start - timedelta(days=SESSIONS_PAGE_DAYS), one_day=timedelta(days=1),
            form=extra.get("form") or {}, error=extra.get("error"),
            lab_form=extra.get("lab_form") or {}, lab_error=extra.get("lab_error"),
        )  # fmt: skip

    def session_view(request: Request, session_id: str, status: int = 200,
                     **extra: Any) -> HTMLResponse:  # fmt: skip
        data = q.session_page(session_id[:64])
        if data is None:
            raise PageProblem(404, "No such session",
                              "There is no session with this id (it may have been deleted).",
                              "Open the list of sessions and pick one there.")  # fmt: skip
        return page(
            request, "session.html", status, data=data,
            timeline={**page_data.timeline(data, tz), **page_data.ALIGNED},
            measures=page_data.session_chart(data, tz),
            form=extra.get("form") or form_values(data["details"], tz),
            error=extra.get("error"), reasons=EARLY_END_REASONS, analytes=ANALYTES,
            back=f"/sessions/{session_id[:64]}",
        )  # fmt: skip

    @app.get("/sessions", response_class=HTMLResponse, include_in_schema=False)
    def sessions_page(request: Request, first: str = "", last: str = "") -> HTMLResponse:
        return list_page(request, first, last)

    @app.get("/sessions/{session_id}", response_class=HTMLResponse, include_in_schema=False)
    def session_page(request: Request, session_id: str) -> HTMLResponse:
        return session_view(request, session_id)

    @app.post("/sessions/start", include_in_schema=False)
    async def start_form(request: Request) -> RedirectResponse:
        fields = await _form(request)
        kind = (fields.get("kind") or DIALYSIS).strip().lower().replace(" ", "_")
        session_id, _told = await run_in_threadpool(log.start, kind, "form")
        return RedirectResponse(f"/sessions/{session_id}", status_code=303)

    @app.post("/sessions/log", include_in_schema=False)
    async def log_form(request: Request) -> Response:
        fields = await _form(request)
        try:
            payload = details_payload(fields, None, tz)
            kind = (fields.get("kind") or DIALYSIS).strip().lower().replace(" ", "_")
            session_id, _details, _new = await run_in_threadpool(
                log.log, {**payload, "session_kind": kind}, "form"
            )
        except DetailsError as error:
            return list_page(request, status=400, form=fields, error=str(error))
        return RedirectResponse(f"/sessions/{session_id}", status_code=303)

    @app.post("/sessions/{session_id}/details", include_in_schema=False)
    async def details_form(request: Request, session_id: str) -> Response:
        fields = await _form(request)
        session_id = session_id[:64]
        data = q.sessions.data()
        i = data.index(session_id)
        if i is None:
            raise PageProblem(404, "No such session", "There is no session with this id.",
                              "Open the list of sessions and pick one there.")  # fmt: skip
        try:
            payload = details_payload(fields, data.named[i], tz)
            await run_in_threadpool(log.log, {**payload, "session_id": session_id}, "form")
        except DetailsError as error:
            return session_view(request, session_id, 400, form=fields, error=str(error))
        return RedirectResponse(f"/sessions/{session_id}#details", status_code=303)

    @app.post("/sessions/{session_id}/end", include_in_schema=False)
    async def end_form(request: Request, session_id: str) -> RedirectResponse:
        await _form(request)
        await run_in_threadpool(log.end, session_id[:64], "form")
        return RedirectResponse(f"/sessions/{session_id[:64]}", status_code=303)

    @app.post("/sessions/{session_id}/delete", include_in_schema=False)
    async def delete_form(request: Request, session_id: str) -> RedirectResponse:
        await _form(request)
        await run_in_threadpool(log.delete, session_id[:64])
        return RedirectResponse("/sessions", status_code=303)

    @app.post("/labs", include_in_schema=False)
    async def lab_form(request: Request) -> Response:
        fields = await _form(request)
        payload = {k: fields[k].strip() for k in ("analyte", "time", "note") if fields.get(k)}
        value, unit = fields.get("value", "").strip(), fields.get("unit", "").strip()
        payload["value"] = f"{value} {unit}".strip() if value else None
        try:
            await run_in_threadpool(log.add_lab, payload, "form")
        except DetailsError as error:
            return list_page(request, status=400, lab_form=fields, lab_error=str(error))
        return RedirectResponse("/sessions#labs", status_code=303)

    @app.post("/labs/{entry_id}/delete", include_in_schema=False)
    async def delete_lab_form(request: Request, entry_id: str) -> RedirectResponse:
        await _form(request)
        await run_in_threadpool(log.delete_lab, entry_id[:80])
        return RedirectResponse("/sessions#labs", status_code=303)
