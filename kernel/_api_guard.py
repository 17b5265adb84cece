"""Who may ask what of ``serve``: the checks every HTTP request passes before it reaches an endpoint.

Whom it keeps out. Loopback is not a boundary: every local user can connect to 127.0.0.1, and so can
any web page the user visits, through the browser (a cross-origin ``text/plain`` or form POST is
sent without a preflight; DNS rebinding makes ``evil.example`` resolve to 127.0.0.1, so even its
reads are same-origin to the browser). Bound beyond loopback, anyone on the network can connect.

The checks, in this order, all on the request's head, before a byte of its body is read:

1. ``Host`` (loopback binds): the name the client used must be a loopback name or address, or the
   bound host. A rebinding page reaches the socket but names its own host: 403.
2. ``Origin``: a browser sends it with every cross-origin request and every POST; one that is not
   this server (scheme aside, ``host:port`` as the client named it) is refused with 403, and so is
   a write that ``Sec-Fetch-Site`` says comes from another site. No CORS header is ever sent, so no
   browser lets another origin read an answer either.
3. The token: every write needs it, also on loopback; reads need it when the server listens beyond
   loopback. It comes as ``Authorization: Bearer``, as ``?token=`` (the URL ``serve`` prints), or as
   the cookie that ``GET /view?token=`` sets (HttpOnly, SameSite=Strict, named after the port so
   that two servers on one host keep theirs apart): 401. A cookie of an earlier serve (the token
   changes at each start) counts as no token, so loopback reads still work with it. A flow's own
   API routes and commands (``configure_api``, ``_flow_http``) are writes like any other: Lightning
   App's took requests from anyone who could reach the port, but a handler runs the flow's code on
   what the request says, and every local user (and every web page, through the browser) reaches
   127.0.0.1. Clients pass the token from ``server.token`` (``run command`` does).
4. A write with a form's content type (``text/plain``, ``application/x-www-form-urlencoded``,
   ``multipart/form-data``) is refused with 415: a web page can send those without asking, so no
   such request ever acts, whatever else it carries.
5. The body: a ``Content-Length`` over the limit is refused with 413 at once; a body streamed past
   the limit (chunked) is refused as soon as it passes, before the endpoint stores anything. A
   body still coming when the server stops is cut short with 503.

Tried and left: an allow-list of origins with CORS (nothing cross-origin is ever needed); checking
``Referer`` (often stripped); a CSRF token in pages (there are no forms, and the cookie is
SameSite=Strict); a token only beyond loopback (another local user could then submit a pickle).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import ParameterError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY = 256 * 2**20
"""The largest request body ``serve`` reads (``--max-body``, ``LK_MAX_BODY``): a pickled app."""

_READS = {"GET", "HEAD"}
_FORM_TYPES = {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
_WILDCARDS = {"0.0.0.0", "::", ""}
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),  # the page's URL may hold the token
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    """``localhost``, ``*.localhost`` (browsers resolve them to loopback themselves) or a loopback IP."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerStopping(Exception):
    """The server stopped while a request body was still coming (the endpoint answers 503)."""

    def __init__(self) -> None:
        super().__init__("the server is stopping; send the request again once it is back")


class BodyTooLarge(Exception):
    """A request body that went past the limit while it was read (the endpoint answers 413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the request body is larger than this server's limit of {limit} bytes")


def _hostname(netloc: str) -> str:
    """``netloc`` (``host[:port]``, ``[v6][:port]``) without its port, lower-case."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _netloc(netloc: str, scheme: str) -> str:
    """``netloc`` lower-case without the scheme's default port, to compare an Origin with a Host."""
    netloc = netloc.strip().lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


class Guard:
    """The ASGI middleware that makes the checks of this module, around the API's app."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        host: str,
        port: Callable[[], int],
        max_body: int = DEFAULT_MAX_BODY,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.app = app
        self.stopping = stopping or asyncio.Event()
        self.token = token
        self.host = host.strip("[]").lower()
        self.port = port
        self.max_body = max_body
        self.loopback_only = is_loopback(self.host)
        self.reads_need_token = not self.loopback_only

    @property
    def cookie_name(self) -> str:
        return f"lk-token-{self.port()}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refusal(scope, headers)
        if refused is not None:
            await _answer(send, *refused)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["method"] == "GET" and _is_page(scope["path"]) and "token" in query:
            # The URL serve printed: the browser keeps the token as a cookie, and the address bar
            # (and history) lose it.
            cookie = f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            where = scope["path"].encode("latin-1")
            await _answer(send, 303, None, [(b"location", where), (b"set-cookie", cookie.encode())])
            return
        # Reads never read a body: their receive stays uvicorn's own (Request.is_disconnected relies
        # on it answering without a pause when the client has gone).
        if scope["method"] not in _READS:
            receive = self._limited(receive)
        await self.app(scope, receive, _secured(send))

    def _refusal(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], list[tuple[bytes, bytes]]] | None:
        method = scope["method"]
        write = method not in _READS
        host_header = headers.get("host", "")
        if self.loopback_only and host_header:
            name = _hostname(host_header)
            if not (is_loopback(name) or name == self.host):
                return (
                    403,
                    _err(
                        f"Host {host_header!r} is not this server: it answers to localhost, 127.0.0.1 "
                        "and [::1] only (a page that renamed this address, DNS rebinding, is refused)"
                    ),
                    [],
                )
        origin = headers.get("origin")
        if origin is not None and not self._same_origin(origin, host_header, scope):
            return (
                403,
                _err(
                    f"cross-origin requests are refused: Origin {origin!r} is not this server "
                    f"({host_header or 'no Host header'}); no page of another site may use this API"
                ),
                [],
            )
        if write and headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
            return 403, _err("a write from a page of another site is refused (Sec-Fetch-Site)"), []
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        presented, source = self._presented(headers, query)
        valid = presented is not None and secrets.compare_digest(presented.encode(), self.token.encode())
        if source == "cookie" and not valid:
            presented = None  # a cookie of an earlier serve on this port: as if there were none
        if presented is not None and not valid:
            return (
                401,
                _err(
                    "the token sent is not this server's: it is in <data dir>/server.token of the running "
                    "`lightning-kernel serve` (a restarted serve has a new one)"
                ),
                [(b"www-authenticate", b'Bearer realm="lightning-kernel"')],
            )
        if presented is None and (write or self.reads_need_token):
            why = "every request" if self.reads_need_token else "a request that changes anything"
            return (
                401,
                _err(
                    f"{why} needs this server's token: send Authorization: Bearer <token>, with the token "
                    "from <data dir>/server.token of the running `lightning-kernel serve` (`run app "
                    "--server` reads it from LK_SERVER_TOKEN or --data-dir), or open the URL that serve printed"
                ),
                [(b"www-authenticate", b'Bearer realm="lightning-kernel"')],
            )
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if write and media in _FORM_TYPES:
            return (
                415,
                _err(
                    f"Content-Type {media} is refused for a change (a web page can send it unasked): send "
                    "application/octet-stream (a pickled app) or application/json"
                ),
                [],
            )
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, _err(f"Content-Length {length!r} is not a number of bytes"), []
            if int(length) > self.max_body:
                return 413, _err(str(BodyTooLarge(self.max_body)) + " (serve --max-body)"), []
        return None

    def _same_origin(self, origin: str, host_header: str, scope: Scope) -> bool:
        parts = urlsplit(origin)
        if not host_header or parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (a sandboxed frame, a file:// page) is never this server
        own = _netloc(host_header, scope.get("scheme", "http"))
        return _netloc(parts.netloc, parts.scheme) == own

    def _presented(self, headers: dict[str, str], query: dict[str, list[str]]) -> tuple[str | None, str]:
        """The token the request carries, and where: ``header``, ``query``, ``cookie`` (or ``""``)."""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip(), "header"
        if "token" in query:
            return query["token"][-1], "query"
        if "cookie" in headers:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(headers["cookie"])
            except Exception:  # a malformed cookie header carries no token
                return None, ""
            morsel = jar.get(self.cookie_name)
            if morsel is not None:
                return morsel.value, "cookie"
        return None, ""

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body
        stopping = self.stopping
        seen = 0
        done = False

        async def limited() -> Message:
            nonlocal seen, done
            if done:
                return await receive()
            # A body that trickles in must not hold a stopping server: the read gives way to it.
            got = asyncio.ensure_future(receive())
            stop = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait((got, stop), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                if not got.done():
                    got.cancel()
            if not got.done() or got.cancelled():
                raise ServerStopping()
            message = got.result()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                done = not message.get("more_body", False)
            else:
                done = True  # http.disconnect: nothing more will come
            return message

        return limited


def _err(message: str) -> dict[str, str]:
    return {"error": message}


def _is_page(path: str) -> bool:
    """``/view``, or a run's page ``/runs/<run>/view``: where the printed URL with the token leads."""
    if path == "/view":
        return True
    parts = path.split("/")
    return len(parts) == 4 and parts[1] == "runs" and bool(parts[2]) and parts[3] == "view"


def _secured(send: Send) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            # A header the endpoint set itself stands (a frontend's file may be framed by its page).
            own = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []), *(h for h in _HEADERS if h[0] not in own)]
        await send(message)

    return secured


async def _answer(
    send: Send, status: int, body: dict[str, str] | None, headers: list[tuple[bytes, bytes]]
) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*head, *headers, *_HEADERS]})
    await send({"type": "http.response.body", "body": data})


MAX_WAIT_S = 60.0
"""The longest long poll (``wait``) a client may ask for."""


class Query:
    """A request's query parameters, each checked: a bad one is a ``ParameterError`` naming it."""

    def __init__(self, request: Any) -> None:
        self.params = request.query_params

    def integer(self, name: str, default: int | None, low: int, high: int) -> Any:
        raw = self.params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ParameterError(name, f"query parameter {name}={raw!r} is not an integer") from None
        if not low <= value <= high:
            raise ParameterError(name, f"query parameter {name}={value} is out of range: {low} to {high}")
        return value

    def seconds(self, name: str) -> float:
        raw = self.params.get(name)
        if raw is None:
            return 0.0
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 <= value <= MAX_WAIT_S):
            raise ParameterError(
                name, f"query parameter {name}={raw!r} must be a number of seconds from 0 to {MAX_WAIT_S:g}"
            )
        return value
