"""Test helpers: free ports, a private mosquitto, an independent paho recorder, a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = "/usr/sbin/mosquitto"
LOCALHOST = "127.0.0.1"


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


class MosquittoProcess:
    """A private mosquitto on a free loopback port (anonymous; no persistence unless
    ``persistent``, then its database lives in ``directory``). ``extra_config``: more lines for
    its configuration file."""

    def __init__(
        self, directory: Path | None = None, port: int | None = None, *,
        persistent: bool = False, extra_config: str = "",
    ) -> None:
        self._dir = Path(directory or tempfile.mkdtemp(prefix="mosquitto-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._persistence = (
            f"persistence true\npersistence_location {self._dir}/\n" if persistent
            else "persistence false\n"
        )
        self._extra_config = extra_config
        self.host = LOCALHOST
        self.port = port or free_tcp_port()
        self.url = f"mqtt://{self.host}:{self.port}"
        self.conf_path = self._dir / "mosquitto.conf"
        self.log_path = self._dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        """Start and wait until the port accepts connections; raise with the log tail if not."""
        self.conf_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            f"{self._persistence}"
            # As root mosquitto drops to user "mosquitto", which could not write the log here.
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            f"log_dest file {self.log_path}\n"
            "log_type all\n"
            f"{self._extra_config}"
        )
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not start:\n{self.log_tail()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; always waits for the process."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: no DISCONNECTs, no final save of the persistence file."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    user_properties: tuple[tuple[str, str], ...] = ()


class MqttRecorder:
    """An independent paho-mqtt (3.1.1) client that records what arrives on one filter.

    It re-subscribes after every reconnect, so it survives a broker restart.
    """

    def __init__(
        self, host: str, port: int, topic_filter: str, qos: int = 1, *, mqtt5: bool = False
    ) -> None:
        self.topic_filter = topic_filter
        self._qos = qos
        self._host, self._port = host, port
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5 if mqtt5 else paho.MQTTv311,
        )
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)  # type: ignore[arg-type]
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = self._on_message

    def start(self, timeout: float = 5.0) -> Self:
        """Connect and return once the broker acknowledged the subscription."""
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(f"recorder could not subscribe to {self.topic_filter!r}")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        client.subscribe(self.topic_filter, qos=self._qos)

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            props = getattr(msg.properties, "UserProperty", None) or []
            self._messages.append(
                Received(
                    msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos,
                    tuple((str(k), str(v)) for k, v in props),
                )
            )
            self._cond.notify_all()

    @property
    def messages(self) -> list[Received]:
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least ``count`` messages arrived; AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(f"expected {count} messages, got {self._messages!r}")
            return list(self._messages)

    async def wait_for_async(self, count: int, within: float = 5.0) -> list[Received]:
        """``wait_for`` that keeps the event loop running."""
        deadline = time.monotonic() + within
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, got {self.messages!r}")
            await asyncio.sleep(0.01)
        return self.messages

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 1/2)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class TcpProxy:
    """An asyncio TCP relay in front of a broker, for killing or refusing connections.

    ``refuse_mqtt5`` answers an MQTT v5 CONNECT with a 3.1.1 CONNACK "unacceptable protocol
    version" and closes, like a broker that only speaks 3.1.1. ``blackhole_downstream``
    discards broker-to-client bytes (acknowledgements never arrive).
    """

    def __init__(self, target_port: int, *, refuse_mqtt5: bool = False) -> None:
        self.target_port = target_port
        self.refuse_mqtt5 = refuse_mqtt5
        self.blackhole_downstream = False
        self.mqtt5_refused = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"mqtt://{LOCALHOST}:{self.port}"

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        """The proxy's own connection tasks."""
        return set(self._tasks)

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, LOCALHOST, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def kill_connections(self) -> None:
        """Abort every relayed connection on both sides (no DISCONNECT, no FIN handshake)."""
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_listening()
        await self.kill_connections()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            first = await self._read_packet(reader)
            if self.refuse_mqtt5 and first[0] & 0xF0 == 0x10 and _connect_level(first) == 5:
                self.mqtt5_refused += 1
                writer.write(b"\x20\x02\x00\x01")
                await writer.drain()
                return
            up_reader, upstream = await asyncio.open_connection(LOCALHOST, self.target_port)
            self._writers.add(upstream)
            upstream.write(first)
            relays = [
                asyncio.create_task(self._relay(reader, upstream, lambda: False)),
                asyncio.create_task(
                    self._relay(up_reader, writer, lambda: self.blackhole_downstream)
                ),
            ]
            self._tasks.update(relays)
            try:
                await asyncio.gather(*relays)
            finally:
                self._tasks.difference_update(relays)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
            self._tasks.discard(task)

    @staticmethod
    async def _read_packet(reader: asyncio.StreamReader) -> bytes:
        header = await reader.readexactly(1)
        length, multiplier, raw = 0, 1, b""
        while True:
            byte = await reader.readexactly(1)
            raw += byte
            length += (byte[0] & 0x7F) * multiplier
            multiplier *= 128
            if not byte[0] & 0x80:
                break
        return header + raw + await reader.readexactly(length)

    @staticmethod
    async def _relay(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, discard: Any
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if not discard():
                    writer.write(data)
                    await writer.drain()
        writer.transport.abort()


def _connect_level(packet: bytes) -> int:
    """The protocol level byte of a CONNECT packet."""
    index = 1
    while packet[index] & 0x80:
        index += 1
    name_length = int.from_bytes(packet[index + 1 : index + 3], "big")
    return packet[index + 3 + name_length]
