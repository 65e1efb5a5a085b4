"""A tiny HTTP/1.1 server on asyncio streams for the operational endpoints.

GET and HEAD only, one request per connection (every response closes it). Bounded so that a
slow or hostile client cannot hold the server: the request head must fit in `MAX_HEAD_BYTES`
and, with any body (read and discarded, at most `MAX_BODY_BYTES`), arrive within
`READ_TIMEOUT`; a response must be taken within `WRITE_TIMEOUT`; at most `MAX_CONNECTIONS` are
served at once and further ones are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

import structlog

from gateway.errors import GatewayError

__all__ = [
    "HttpError",
    "HttpPortInUse",
    "HttpServer",
    "Request",
    "Response",
    "Route",
    "body_length",
    "json_response",
    "parse_head",
]

log = structlog.get_logger(__name__)

MAX_HEAD_BYTES: Final = 8192
MAX_BODY_BYTES: Final = 4096
READ_TIMEOUT: Final = 5.0
WRITE_TIMEOUT: Final = 5.0
MAX_CONNECTIONS: Final = 32
CLOSE_GRACE: Final = 1.0
LINGER_TIMEOUT: Final = 1.0
LINGER_BYTES: Final = 65536
METHODS: Final = ("GET", "HEAD")
_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


class HttpPortInUse(GatewayError):
    """The HTTP port is already bound by another socket."""


class HttpError(Exception):
    """A request the server answers with an error status instead of a handler's response."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())

    def encode(self, *, head_only: bool = False) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status.value} {self.status.phrase}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


Route = Callable[[Request], Awaitable[Response]]


def json_response(status: HTTPStatus, document: object) -> Response:
    return Response(status, json.dumps(document, separators=(",", ":")).encode() + b"\n")


def _error(status: HTTPStatus, message: str, *headers: tuple[str, str]) -> Response:
    response = json_response(status, {"error": message})
    return Response(response.status, response.body, headers=headers)


def _is_token(text: str) -> bool:
    return bool(text) and all(char in _TOKEN_CHARS for char in text)


def parse_head(data: bytes) -> Request:
    """The request line and headers (up to and including the blank line); HttpError if bad."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "non-ASCII bytes in the request head") from None
    if not text.endswith("\r\n\r\n"):
        raise HttpError(HTTPStatus.BAD_REQUEST, "the request head does not end in CRLF CRLF")
    request_line, *header_lines = text[:-4].split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version = parts
    if not _is_token(method):
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise HttpError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.0 and 1.1")
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed protocol version")
    if not target.startswith("/") or any(char <= " " or char == "\x7f" for char in target):
        raise HttpError(HTTPStatus.BAD_REQUEST, "the target must be an absolute path")
    path, _, query = target.partition("?")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not _is_token(name):  # also rejects obsolete line folding
            raise HttpError(HTTPStatus.BAD_REQUEST, "malformed header line")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            if key in ("content-length", "host"):
                raise HttpError(HTTPStatus.BAD_REQUEST, f"repeated {name} header")
            value = f"{headers[key]}, {value}"
        headers[key] = value
    if version == "HTTP/1.1" and "host" not in headers:
        raise HttpError(HTTPStatus.BAD_REQUEST, "HTTP/1.1 requires a Host header")
    return Request(method, path, query, headers)


def body_length(request: Request) -> int:
    """Bytes of request body to read and discard; HttpError when it is not acceptable."""
    if "transfer-encoding" in request.headers:
        raise HttpError(HTTPStatus.BAD_REQUEST, "request bodies are not accepted")
    raw = request.headers.get("content-length")
    if raw is None:
        return 0
    if not raw.isdigit():
        raise HttpError(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
    return length


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an error the request may not have been read to its end; closing with unread bytes
    makes the kernel send RST, which can destroy the response before the client reads it. So
    half-close and discard what still comes, briefly and boundedly (a "lingering close")."""
    if writer.can_write_eof():
        writer.write_eof()
    discarded = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_TIMEOUT):
            while discarded < LINGER_BYTES:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                discarded += len(chunk)


class HttpServer:
    """Serves `routes` (path -> handler, GET and HEAD) until `close`."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = dict(routes)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.address: tuple[str, int] | None = None
        self.refused_connections = 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind and listen; HttpPortInUse when the port is taken."""
        try:
            self._server = await asyncio.start_server(
                self._connection, host, port, limit=MAX_HEAD_BYTES, reuse_address=True,
                family=socket.AF_INET6 if ":" in host else socket.AF_INET,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise HttpPortInUse(
                    f"HTTP port {port} on {host} is already in use; set EGW_HTTP__PORT to a "
                    "free port or EGW_HTTP__ENABLED=false"
                ) from exc
            raise
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        return self.address

    async def close(self) -> None:
        """Stop listening, end every open connection (bounded), release the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_GRACE)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._tasks) >= MAX_CONNECTIONS:
            self.refused_connections += 1
            writer.transport.abort()
            return
        self._tasks.add(task)
        try:
            request, response = await self._read(reader)
            if response is None and request is not None:
                response = await self._dispatch(request)
            if response is not None:
                head_only = request is not None and request.method == "HEAD"
                writer.write(response.encode(head_only=head_only))
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await writer.drain()
                if response.status >= HTTPStatus.BAD_REQUEST:
                    await _linger(reader, writer)
        except (ConnectionError, TimeoutError):
            writer.transport.abort()  # gone, or not reading what we send
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _read(
        self, reader: asyncio.StreamReader
    ) -> tuple[Request | None, Response | None]:
        """(request, None) to dispatch, (request or None, response) to answer at once, or
        (None, None) when the client went away before sending a whole request."""
        request: Request | None = None
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                request = parse_head(await reader.readuntil(b"\r\n\r\n"))
                self._check_route(request)
                length = body_length(request)
                if length:
                    await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return None, None
        except asyncio.LimitOverrunError:
            too_large = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            return None, _error(too_large, "request head too large")
        except TimeoutError:
            return request, _error(HTTPStatus.REQUEST_TIMEOUT, "request not received in time")
        except HttpError as exc:
            allow = (("Allow", ", ".join(METHODS)),)
            extra = allow if exc.status is HTTPStatus.METHOD_NOT_ALLOWED else ()
            return request, _error(exc.status, exc.message, *extra)
        return request, None

    def _check_route(self, request: Request) -> None:
        if request.path not in self._routes:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such path: {request.path[:100]}")
        if request.method not in METHODS:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} not allowed")

    async def _dispatch(self, request: Request) -> Response:
        try:
            return await self._routes[request.path](request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("http_handler_failed", path=request.path)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
