"""The tiny HTTP/1.1 server: request parsing, status codes, limits and shutdown (loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from http import HTTPStatus

import pytest

import gateway.http.server as http_server
from gateway.http.server import (
    HttpError,
    HttpPortInUse,
    HttpServer,
    Request,
    Response,
    body_length,
    json_response,
    parse_head,
)


async def hello(_request: Request) -> Response:
    return json_response(HTTPStatus.OK, {"hello": "world"})


async def broken(_request: Request) -> Response:
    raise RuntimeError("handler bug")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    srv = HttpServer({"/hello": hello, "/broken": broken})
    await srv.start("127.0.0.1", 0)
    try:
        yield srv
    finally:
        await srv.close()


async def exchange(srv: HttpServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; (status, headers, body)."""
    assert srv.address is not None
    reader, writer = await asyncio.open_connection(*srv.address)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: gw\r\n\r\n".encode()


# ----------------------------------------------------------------------------- parsing
def test_parse_head_reads_method_path_query_and_headers() -> None:
    """The request line splits into method, path and query; header names are lower-cased."""
    request = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: gw\r\nAccept:  text/plain \r\n\r\n")
    assert request == Request("GET", "/metrics", "x=1", {"host": "gw", "accept": "text/plain"})


def test_http_1_0_needs_no_host() -> None:
    """HTTP/1.0 requests without Host are fine; HTTP/1.1 ones are not (RFC 9112 §3.2)."""
    assert parse_head(b"GET / HTTP/1.0\r\n\r\n").path == "/"
    with pytest.raises(HttpError) as info:
        parse_head(b"GET / HTTP/1.1\r\n\r\n")
    assert info.value.status is HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED),
        (b"GET / FTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET metrics HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", HTTPStatus.BAD_REQUEST),
    ],
)
def test_malformed_heads_are_rejected(head: bytes, status: HTTPStatus) -> None:
    """Malformed request lines, versions, targets and header lines raise HttpError."""
    with pytest.raises(HttpError) as info:
        parse_head(head)
    assert info.value.status is status


def test_bodies_are_bounded() -> None:
    """Content-Length up to MAX_BODY_BYTES is read and ignored; more, or chunked, is refused."""
    def request(**headers: str) -> Request:
        return Request("GET", "/", "", headers)

    assert body_length(request()) == 0
    assert body_length(request(**{"content-length": "10"})) == 10
    for headers, status in [
        ({"content-length": str(http_server.MAX_BODY_BYTES + 1)},
         HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
        ({"content-length": "-1"}, HTTPStatus.BAD_REQUEST),
        ({"transfer-encoding": "chunked"}, HTTPStatus.BAD_REQUEST),
    ]:
        with pytest.raises(HttpError) as info:
            body_length(request(**headers))
        assert info.value.status is status


def test_response_encoding_closes_the_connection() -> None:
    """A response carries its length, Connection: close, and no body for HEAD."""
    response = Response(HTTPStatus.OK, b"abc", "text/plain", (("Allow", "GET"),))
    assert response.encode() == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
        b"Cache-Control: no-store\r\nConnection: close\r\nAllow: GET\r\n\r\nabc"
    )
    assert response.encode(head_only=True).endswith(b"Allow: GET\r\n\r\n")


# ------------------------------------------------------------------------ over a socket
async def test_get_and_head_are_served(server: HttpServer) -> None:
    """GET gets the handler's JSON; HEAD the same headers without the body."""
    status, headers, body = await exchange(server, get("/hello"))
    assert (status, json.loads(body)) == (200, {"hello": "world"})
    assert headers["connection"] == "close"
    status, headers, body = await exchange(server, get("/hello", "HEAD"))
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (get("/nope"), 404),
        (get("/hello", "POST"), 405),
        (get("/hello", "DELETE"), 405),
        (b"GET /hello HTTP/1.1\r\n\r\n", 400),
        (b"GET /hello HTTP/3\r\nHost: a\r\n\r\n", 505),
        (b"GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 99999\r\n\r\n", 413),
        (b"GET /hello HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 431),
        (get("/broken"), 500),
    ],
)
async def test_errors_get_their_status(server: HttpServer, data: bytes, status: int) -> None:
    """Unknown path 404, other methods 405 (with Allow), bad requests 400/413/431/505, a
    failing handler 500; every error body is JSON."""
    got, headers, body = await exchange(server, data)
    assert got == status
    assert "error" in json.loads(body)
    if status == 405:
        assert headers["allow"] == "GET, HEAD"


async def test_a_small_body_is_read_and_ignored(server: HttpServer) -> None:
    """A GET with a short body is answered normally."""
    data = b"GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    status, _, _ = await exchange(server, data)
    assert status == 200


async def test_a_slow_client_gets_408(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request head that does not arrive within READ_TIMEOUT is answered 408 and closed."""
    monkeypatch.setattr(http_server, "READ_TIMEOUT", 0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, _ = await exchange(server, b"GET /hello HTTP/1.1\r\nHost")
    assert status == 408
    assert loop.time() - started < 2


async def test_connections_beyond_the_limit_are_closed(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MAX_CONNECTIONS idle clients connected, the next one is closed at once; the idle
    ones do not stop the server from closing."""
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 2)
    assert server.address is not None
    idle = [await asyncio.open_connection(*server.address) for _ in range(2)]
    for _ in range(50):
        if len(server._tasks) == 2:
            break
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection(*server.address)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    assert server.refused_connections == 1
    await server.close()
    for idle_reader, idle_writer in idle:
        assert await asyncio.wait_for(idle_reader.read(), 2) == b""
        idle_writer.close()


async def test_close_leaves_no_task_behind(server: HttpServer) -> None:
    """After close() no connection task of the server is left running."""
    assert server.address is not None
    _, writer = await asyncio.open_connection(*server.address)
    await asyncio.sleep(0.05)
    await server.close()
    writer.close()
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current and not t.done()] == []


async def test_a_port_in_use_is_reported(server: HttpServer) -> None:
    """Binding a port another server listens on raises HttpPortInUse naming the setting."""
    assert server.address is not None
    other = HttpServer({})
    with pytest.raises(HttpPortInUse, match="EGW_HTTP__PORT"):
        await other.start("127.0.0.1", server.address[1])
