"""Request guarding for the dashboard (ASGI middleware): allowed hosts, cross-site request
forgery, and a body limit on every route.

- **Hosts (DNS rebinding).** A page on a name the attacker controls can point that name at
  127.0.0.1 and read the dashboard as its own origin; its requests still carry its name in `Host`.
  Only the names the dashboard is reached by are answered: by default the loopback names with the
  port it listens on (localhost, 127.0.0.1, [::1]), the bound name when it listens on one address,
  and names given with `--allowed-host`. On a wildcard address (0.0.0.0, ::) an IP literal on the
  right port is answered too: an origin that is an IP address cannot be rebound. Starlette's
  TrustedHostMiddleware ignores the port and cannot tell IP literals apart, hence this one.
- **Forgery.** A request that changes something (any method but GET, HEAD, OPTIONS) is refused
  when the browser says it comes from another origin: `Sec-Fetch-Site` other than same-origin
  or none, an `Origin` (or, without one, a `Referer`) that is not this host, or `Origin: null`.
  Another port on the same host is another origin. The JSON API takes only its own content types
  (application/json; text/csv for the import), which no page on another origin can send without
  a CORS preflight that the dashboard never grants (so `fetch(..., {mode: "no-cors"})` and HTML
  forms cannot reach it); a valid bearer token is accepted instead. A form posted to a page must
  carry the process's CSRF token (`csrf_token` field or `X-CSRF-Token` header; the pages'
  forms get it from `csrf_input()`, `dashboards.web`).
- **Bodies.** Every route has a body limit (64 KB unless the route says otherwise), checked on
  the declared length before anything is read, and on the bytes as they stream in: a 300 MB
  upload is refused after at most the limit has been read.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "[::]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a page on another origin can send without a CORS preflight (an HTML form or a no-cors fetch).
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})
DEFAULT_BODY_LIMIT = 64 * 1024
API_PREFIX = "/api/"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
DEFAULT_PORTS = {"http": 80, "https": 443}


# -- hosts ---------------------------------------------------------------------------------------


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` or `[v6]:port` -> (lower-case name, IPv6 in brackets; port or None)."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name += "]"
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            return None
    elif value.count(":") == 1:
        name, port_text = value.split(":")
    elif ":" in value:  # a bare IPv6 address, or nothing
        if not _is_ip_literal(value):
            return None
        name, port_text = f"[{value}]", None
    else:
        name, port_text = value, None
    if port_text is None:
        return name, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return name, int(port_text)


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class HostPolicy:
    """Which `Host` headers the dashboard answers."""

    exact: frozenset[tuple[str, int]] = frozenset()
    any_port: frozenset[str] = frozenset()
    ip_literals_on: int | None = None  # listening on a wildcard address: IP literals, this port

    @classmethod
    def for_listen(
        cls, host: str | None = None, port: int | None = None, extra: Iterable[str] = ()
    ) -> HostPolicy:
        """The hosts for a server listening on host:port, plus `extra` (`NAME` on any port or
        `NAME:PORT`). Without a port (embedded in tests), the loopback names on any port."""
        exact: set[tuple[str, int]] = set()
        any_port: set[str] = set()
        ip_literals_on = None
        if port is None:
            any_port.update(LOOPBACK_NAMES)
        else:
            bound = (host or "").lower()
            if bound in WILDCARD_ADDRESSES:
                names = {*LOOPBACK_NAMES, *_machine_names()}
                ip_literals_on = port
            elif is_loopback(bound):
                names = {*LOOPBACK_NAMES, _bracketed(bound)}
            else:
                names = {_bracketed(bound)}
            exact.update((name, port) for name in names)
        for item in extra:
            parsed = split_host(item)
            if parsed is None:
                raise ValueError(f"--allowed-host {item!r}: give NAME or NAME:PORT")
            name, item_port = parsed
            if item_port is None:
                any_port.add(name)
            else:
                exact.add((name, item_port))
        return cls(frozenset(exact), frozenset(any_port), ip_literals_on)

    def allows(self, header: str | None, scheme: str = "http") -> bool:
        parsed = split_host(header or "")
        if parsed is None:
            return False
        name, port = parsed
        port = port if port is not None else DEFAULT_PORTS.get(scheme, 80)
        if name in self.any_port or (name, port) in self.exact:
            return True
        return self.ip_literals_on == port and _is_ip_literal(name)

    def describe(self) -> str:
        names = sorted(f"{n}:{p}" for n, p in self.exact) + sorted(self.any_port)
        if self.ip_literals_on is not None:
            names.append(f"any IP address:{self.ip_literals_on}")
        return ", ".join(names)


def is_loopback(host: str) -> bool:
    """localhost or a loopback address (IPv6 with or without brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _machine_names() -> set[str]:
    """This machine's own names (for a dashboard listening on every address)."""
    name = socket.gethostname().lower()
    names = {name, f"{name}.local"} if name else set()
    fqdn = socket.getfqdn().lower()
    if fqdn and fqdn != "localhost":
        names.add(fqdn)
    return names


# -- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardSettings:
    """What the guard enforces: hosts, the bearer token (if any), the CSRF token, body limits."""

    hosts: HostPolicy = field(default_factory=HostPolicy.for_listen)
    bearer: str | None = None
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    body_limits: Mapping[str, int] = field(default_factory=dict)  # by path; others: the default
    api_types: Mapping[str, frozenset[str]] = field(default_factory=dict)  # by path; else JSON
    default_body_limit: int = DEFAULT_BODY_LIMIT
    refused: Counter[str] = field(default_factory=Counter)  # requests refused, by kind

    def body_limit(self, path: str) -> int:
        return self.body_limits.get(path, self.default_body_limit)

    def media_types(self, path: str) -> frozenset[str]:
        return self.api_types.get(path, frozenset({"application/json"}))


class Refusal(Exception):
    """A request the guard does not let through: its status, what to tell, and its kind (for the
    count: host, origin, content_type, csrf, body_size)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class _BodyTooLarge(Exception):
    pass


# -- the middleware ------------------------------------------------------------------------------


class RequestGuard:
    """ASGI middleware applying `GuardSettings` to every HTTP request."""

    def __init__(self, app: ASGIApp, settings: GuardSettings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path = scope.get("path", "")
        try:
            self._check_host(headers, scope.get("scheme", "http"))
            limit = self.settings.body_limit(path)
            declared = headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                raise Refusal(413, "body_size", _too_large(limit))
            if scope["method"] not in SAFE_METHODS:
                self._check_origin(headers, scope.get("scheme", "http"))
                receive = await self._check_content(scope, headers, receive, path, limit)
        except Refusal as refusal:
            await self._refuse(scope, send, refusal)
            return
        await self._call_limited(scope, receive, send, limit)

    def _check_host(self, headers: Mapping[str, str], scheme: str) -> None:
        host = headers.get("host")
        if not self.settings.hosts.allows(host, scheme):
            raise Refusal(
                400,
                "host",
                f"this dashboard does not answer to the host {str(host)[:100]!r}: it answers to "
                f"{self.settings.hosts.describe()} (start it with --allowed-host NAME to add one)",
            )

    def _check_origin(self, headers: Mapping[str, str], scheme: str) -> None:
        """Refuse what the browser says comes from another origin."""
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() not in SAME_ORIGIN_FETCH:
            raise Refusal(
                403, "origin", f"refused a {site} request: changes come from the dashboard only"
            )
        own = _origin_key(f"{scheme}://{headers.get('host', '')}")
        origin = headers.get("origin")
        if origin is not None:
            if origin.strip().lower() == "null" or _origin_key(origin) != own:
                raise Refusal(403, "origin", "refused a request from another origin")
            return
        referer = headers.get("referer")
        if referer and _origin_key(referer) != own:
            raise Refusal(403, "origin", "refused a request from another page's origin")

    async def _check_content(
        self, scope: Scope, headers: Mapping[str, str], receive: Receive, path: str, limit: int
    ) -> Receive:
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if path.startswith(API_PREFIX):
            if self._bearer_ok(headers) or scope["method"] == "DELETE":
                return receive
            wanted = self.settings.media_types(path)
            if media not in wanted:
                raise Refusal(
                    415,
                    "content_type",
                    f"send the body as {' or '.join(sorted(wanted))} (Content-Type), not "
                    f"{media or 'without a type'}",
                )
            return receive
        # A page's own form: the CSRF token in the header, or in an urlencoded body.
        if self._csrf_ok(headers.get(CSRF_HEADER)):
            return receive
        if media == "application/x-www-form-urlencoded":
            body = await _read_body(receive, limit)
            try:
                fields = parse_qs(body.decode("latin-1"), max_num_fields=1000)
            except ValueError:  # more fields than any form of ours has
                fields = {}
            if self._csrf_ok((fields.get(CSRF_FIELD) or [None])[0]):
                return _replay(body, receive)
        raise Refusal(403, "csrf", "the form's CSRF token is missing or wrong: reload the page")

    def _bearer_ok(self, headers: Mapping[str, str]) -> bool:
        bearer = self.settings.bearer
        header = headers.get("authorization", "")
        if bearer is None or not header.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(header[7:].encode(), bearer.encode())

    def _csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            given.encode(), self.settings.csrf_token.encode()
        )

    async def _call_limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app with the body counted as it streams in; over the limit, answer 413."""
        state = {"read": 0, "exceeded": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    state["exceeded"] = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"]:
                return  # the app's answer to a cut-off body is replaced by ours
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not state["exceeded"]:
                raise
        if state["exceeded"] and not state["started"]:
            await self._refuse(scope, send, Refusal(413, "body_size", _too_large(limit)))

    async def _refuse(self, scope: Scope, send: Send, refusal: Refusal) -> None:
        self.settings.refused[refusal.kind] += 1
        await _respond(scope, send, refusal)


def _too_large(limit: int) -> str:
    return f"the request body is over this route's limit of {limit:,} bytes"


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        name = key.decode("latin-1").lower()
        if name not in out:  # the first of repeated headers, as Starlette does
            out[name] = value.decode("latin-1")
    return out


def _origin_key(url: str) -> tuple[str, int] | None:
    """(host, port) of an origin or URL, the scheme's default port filled in."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not host or port is None:
        return None
    return _bracketed(host.lower()), port


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, "body_size", _too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read already, then whatever comes next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _respond(scope: Scope, send: Send, refusal: Refusal) -> None:
    """The refusal as JSON for the API, as plain text for pages."""
    if scope.get("path", "").startswith(API_PREFIX):
        body = json.dumps({"error": refusal.message}).encode()
        media = b"application/json"
    else:
        body = refusal.message.encode()
        media = b"text/plain; charset=utf-8"
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
    if refusal.status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
