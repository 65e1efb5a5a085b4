"""Publish throughput of MQTT client libraries against a private local mosquitto.

Compares gmqtt on uvloop, paho-mqtt publishing from its own network thread (loop_start) and,
with ``--link``, the gateway's own bridge link. QoS 0 is counted at a separate subscriber
process (a minimal raw-socket MQTT 3.1.1 subscriber, so its cost does not mask the
publisher's); QoS 1 is timed until every PUBACK has been received.

    python bench/mqtt_client_libs.py [-n 200000] [--qos1-n 50000] [--repeat 3] [--link]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import pwd
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import gmqtt
import paho.mqtt.client as paho
import uvloop
from gmqtt.mqtt.constants import MQTTv50
from paho.mqtt import __version__ as paho_version
from paho.mqtt.enums import CallbackAPIVersion

from gateway.bridge import create_link
from gateway.config import Settings

MOSQUITTO = "/usr/sbin/mosquitto"
PAYLOAD = b"hello world"  # 11 bytes
HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------- broker
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def mosquitto() -> Iterator[int]:
    """A mosquitto on a free loopback port, no queue limits, killed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-mosq-"))
    port = _free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages 0\nuser {pwd.getpwuid(os.getuid()).pw_name}\n"
        f"log_dest file {tmp / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------ subscriber
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _str16(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _subscriber_main(port: int, topic: str, expected: int, ready: Any, results: Any) -> None:
    """Count PUBLISH packets on ``topic`` until ``expected`` arrived or 3 s of silence."""
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + _str16(b"bench-sub-%d" % os.getpid())
    sock.sendall(b"\x10" + _varint(len(connect)) + connect)
    sub = b"\x00\x01" + _str16(topic.encode()) + b"\x00"
    sock.sendall(b"\x82" + _varint(len(sub)) + sub)
    sock.settimeout(3.0)
    buf = bytearray()
    count = 0
    first = last = 0.0
    while count < expected:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            break
        if not chunk:
            break
        now = time.monotonic()
        buf += chunk
        pos, end = 0, len(buf)
        while end - pos >= 2:
            mult, length, i = 1, 0, pos + 1
            while i < end:
                byte = buf[i]
                length += (byte & 0x7F) * mult
                mult *= 128
                i += 1
                if not byte & 0x80:
                    break
            else:
                break
            if i + length > end:
                break
            kind = buf[pos] & 0xF0
            if kind == 0x30:
                count += 1
            elif kind == 0x90:
                ready.set()
            pos = i + length
        if pos:
            del buf[:pos]
        if count and not first:
            first = now
        last = now if count else last
    sock.close()
    results.put({"received": count, "first": first, "last": last})


# ------------------------------------------------------------------------------------ publishers
class _AckCounter:
    """Duck-typed gmqtt PersistentStorage that only counts PUBACK/PUBCOMP."""

    def __init__(self, on_ack: Callable[[], None]) -> None:
        self._on_ack = on_ack
        self.is_empty = True

    def push_message(self, mid: int, raw: bytes) -> None:
        pass

    def remove_message_by_mid(self, mid: int) -> None:
        self._on_ack()

    async def wait_empty(self) -> None:
        return None

    def clear(self) -> None:
        pass

    def get_all(self) -> list[tuple[int, bytes]]:
        return []


async def _gmqtt_publish(port: int, topic: str, n: int, qos: int) -> dict[str, float]:
    state = {"acked": 0, "inflight": 0}
    freed = asyncio.Event()

    def on_ack() -> None:
        state["acked"] += 1
        state["inflight"] -= 1
        freed.set()

    props: dict[str, Any] = {}
    client = gmqtt.Client(f"bench-gmqtt-{os.getpid()}", persistent_storage=_AckCounter(on_ack))
    client.on_connect = lambda _c, _f, _rc, p: props.update(p)
    await client.connect(HOST, port, version=MQTTv50)
    # gmqtt raises OverflowError past receive_maximum - 1 ids in use: the caller must window.
    window = props.get("receive_maximum", [65535])[0] - 1
    t0 = time.monotonic()
    if qos == 0:
        for i in range(n):
            client.publish(topic, PAYLOAD, qos=0)
            if i % 1000 == 999:
                await asyncio.sleep(0)
        t_pub = time.monotonic()
        transport = client._connection._transport
        while transport.get_write_buffer_size():  # noqa: ASYNC110 -- no event for "drained"
            await asyncio.sleep(0.0005)
    else:
        sent = 0
        while sent < n:
            while state["inflight"] < window and sent < n:
                client.publish(topic, PAYLOAD, qos=qos)
                state["inflight"] += 1
                sent += 1
            freed.clear()
            await asyncio.wait_for(freed.wait(), 30)
        t_pub = time.monotonic()
        while state["acked"] < n:
            freed.clear()
            await asyncio.wait_for(freed.wait(), 30)
    t_done = time.monotonic()
    await client.disconnect()
    return {"t0": t0, "t_pub": t_pub, "t_done": t_done, "acked": state["acked"]}


def run_gmqtt(port: int, topic: str, n: int, qos: int) -> dict[str, float]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_gmqtt_publish(port, topic, n, qos))


def run_paho(port: int, topic: str, n: int, qos: int) -> dict[str, float]:
    connected, finished = threading.Event(), threading.Event()
    count = [0]

    def on_publish(*_args: Any) -> None:
        count[0] += 1
        if count[0] >= n:
            finished.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{os.getpid()}", protocol=paho.MQTTv5
    )
    client.on_connect = lambda *_a: connected.set()
    client.on_publish = on_publish
    client.connect(HOST, port)
    client.loop_start()
    try:
        if not connected.wait(5):
            raise RuntimeError("paho did not connect")
        t0 = time.monotonic()
        for _ in range(n):
            client.publish(topic, PAYLOAD, qos=qos)
        t_pub = time.monotonic()
        finished.wait(60)
        t_done = time.monotonic()
    finally:
        client.disconnect()
        client.loop_stop()
    return {"t0": t0, "t_pub": t_pub, "t_done": t_done, "acked": count[0] if qos else 0}


async def _link_publish(port: int, topic: str, n: int, qos: int) -> dict[str, float]:
    settings = Settings(
        broker={"url": f"mqtt://{HOST}:{port}", "mountpoint": "", "max_pending": n + 10}
    )
    link = create_link(settings, lambda _m: None)
    ready = asyncio.Event()
    task = asyncio.create_task(link.run(ready))
    await ready.wait()
    t0 = time.monotonic()
    futures = []
    for i in range(n):
        fut = link.publish(topic, PAYLOAD, qos=qos)
        if fut is not None:
            futures.append(fut)
        if i % 1000 == 999:
            await asyncio.sleep(0)
    t_pub = time.monotonic()
    if futures:
        await asyncio.wait_for(asyncio.gather(*futures), 60)
    t_done = time.monotonic()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return {"t0": t0, "t_pub": t_pub, "t_done": t_done, "acked": len(futures)}


def run_link(port: int, topic: str, n: int, qos: int) -> dict[str, float]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_link_publish(port, topic, n, qos))


PUBLISHERS: dict[str, Callable[[int, str, int, int], dict[str, float]]] = {
    "gmqtt-uvloop": run_gmqtt,
    "paho-loop_start": run_paho,
    "gateway-link": run_link,
}


# ---------------------------------------------------------------------------------------- driver
def measure(port: int, lib: str, qos: int, n: int, run_id: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    topic = f"bench/{lib}/{run_id}"
    sub = ctx.Process(target=_subscriber_main, args=(port, topic, n, ready, results))
    sub.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("subscriber did not subscribe")
        pub = PUBLISHERS[lib](port, topic, n, qos)
        received = results.get(timeout=60)
    finally:
        sub.join(10)
        if sub.is_alive():
            sub.kill()
    e2e = received["last"] - pub["t0"]
    return {
        "lib": lib,
        "qos": qos,
        "n": n,
        "publish_call_rate": round(n / (pub["t_pub"] - pub["t0"])),
        "completed_rate": round(n / (pub["t_done"] - pub["t0"])),
        "acked": int(pub["acked"]),
        "received": received["received"],
        "delivered_rate": round(received["received"] / e2e) if e2e > 0 else 0,
        "loss": n - received["received"],
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeated runs; loss summed."""
    row = dict(runs[0])
    for key in ("publish_call_rate", "completed_rate", "delivered_rate"):
        row[key] = round(statistics.median(r[key] for r in runs))
    row["runs"] = [r["delivered_rate"] for r in runs]
    row["loss"] = sum(r["loss"] for r in runs)
    row["received"] = sum(r["received"] for r in runs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000, help="QoS 0 messages per run")
    parser.add_argument("--qos1-n", type=int, default=50_000, help="QoS 1 messages per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--link", action="store_true", help="also measure gateway.bridge")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    libs = ["gmqtt-uvloop", "paho-loop_start"] + (["gateway-link"] if args.link else [])
    rows: list[dict[str, Any]] = []
    with mosquitto() as port:
        run_id = 0
        for qos, n in ((0, args.n), (1, args.qos1_n)):
            for lib in libs:
                runs = []
                for _ in range(args.repeat):
                    run_id += 1
                    runs.append(measure(port, lib, qos, n, run_id))
                rows.append(_summary(runs))
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "gmqtt": gmqtt.__version__,
        "paho-mqtt": paho_version,
    }
    if args.json:
        print(json.dumps({"machine": machine, "results": rows}, indent=2))
        return
    print(json.dumps(machine))
    header = f"{'library':<16} qos {'n/run':>7} {'call/s':>8} {'done/s':>8}"
    print(header + f" {'delivered/s':>11}  loss  runs")
    for r in rows:
        print(
            f"{r['lib']:<16} {r['qos']:>3} {r['n']:>7} {r['publish_call_rate']:>8} "
            f"{r['completed_rate']:>8} {r['delivered_rate']:>11} {r['loss']:>5}  {r['runs']}"
        )


if __name__ == "__main__":
    main()
