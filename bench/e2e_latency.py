"""End-to-end latency: MQTT-SN panel command -> gateway (ONNX intent + rules) -> MQTT-SN actuator.

Separate processes, loopback only: a private mosquitto, the gateway (``python -m gateway run``,
configured by EGW_ variables), a load generator (N "sensor" clients publishing CBOR-map telemetry
on ``devices/{id}/telemetry`` + P "panel" clients publishing text commands on
``devices/{id}/command``, QoS 0, mixed at a fixed total rate) and an "actuator" MQTT-SN client
subscribed to ``actuators/+/set`` that stamps every arrival. A paho subscriber in the actuator
process counts the normalised telemetry the gateway forwarded to the broker (ingest throughput).

    python3 bench/e2e_latency.py --rate 1000                  # 10 s at 1,000 msg/s, half commands
    python3 bench/e2e_latency.py --rate 5000 --json out.json

Correlation (the command text cannot carry a timestamp). A warm-up sends every candidate text
("turn off the kitchen lights", "change the bedroom lights to blue", ...) once, 30 ms apart, and
learns which single (actuator, command) each one produces; only texts whose result is one action,
distinct from every other text's, are used. In the measured phase the panels send these texts
round-robin, so a given (actuator, command) key is reused only every K-th command (K = number of
usable texts). The generator records (key, monotonic send time) per command; the actuator records
(key, monotonic arrival time). Per key the gateway keeps order (one pipeline, FIFO micro-batches,
one bus), so the n-th arrival of a key is the n-th send of that key: latency = arrival - send.
CLOCK_MONOTONIC is system-wide on Linux, so the two processes' stamps are comparable. Sends of a
key that never arrive are counted as lost; if one is lost mid-run the FIFO pairing of that key is
shifted by one (latency inflated by about K / command-rate); the report then warns, giving the
number of latencies longer than that reuse interval. With no loss the pairing is exact, however
long a latency is.

Telemetry uses device ids ``sensorN`` and temperatures below 30 degC, so no sensor rule fires.
Every run is bounded: ``--duration`` <= 40 s plus setup, with a hard 60 s alarm.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

import _common as common  # also puts the repository root on sys.path

from gateway.mqttsn.codec import MalformedPacket, decode, encode
from gateway.mqttsn.constants import ReturnCode
from gateway.mqttsn.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    Publish,
    RegAck,
    Register,
    SubAck,
    Subscribe,
)

HOST = common.HOST
HARD_CAP_S = 60
ROOMS = ("kitchen", "living room", "bedroom", "bathroom", "hall", "office")
COLOURS = ("blue", "red", "green", "yellow", "purple", "orange", "pink", "white")


def candidate_texts() -> list[str]:
    texts: list[str] = []
    for room in ROOMS:
        texts += [
            f"turn off the {room} lights",
            f"turn on the {room} lights",
            f"dim the {room} lights",
            f"brighten the {room} lights",
        ]
        texts += [f"change the {room} lights to {colour}" for colour in COLOURS]
    return texts


# ------------------------------------------------------------------------- a tiny MQTT-SN client
class SnClient:
    """A blocking MQTT-SN client on one connected UDP socket (setup only; then raw sends)."""

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.connect((HOST, port))
        self.client_id = client_id
        self.msg_id = 0

    def _next_id(self) -> int:
        self.msg_id = self.msg_id % 0xFFFF + 1
        return self.msg_id

    def request(self, packet: Packet, want: type, timeout: float = 2.0, tries: int = 5) -> Any:
        for _ in range(tries):
            self.sock.send(encode(packet))
            self.sock.settimeout(timeout / tries)
            try:
                while True:
                    reply = decode(self.sock.recv(4096))
                    if isinstance(reply, want):
                        return reply
            except (TimeoutError, MalformedPacket):
                continue
        raise RuntimeError(f"{self.client_id}: no {want.__name__} for {packet}")

    def connect(self) -> None:
        ack = self.request(Connect(client_id=self.client_id, duration=600), ConnAck)
        if ack.return_code != ReturnCode.ACCEPTED:
            raise RuntimeError(f"{self.client_id}: CONNACK {ack.return_code}")

    def register(self, topic: str) -> int:
        ack = self.request(Register(topic_id=0, msg_id=self._next_id(), topic_name=topic), RegAck)
        if ack.return_code != ReturnCode.ACCEPTED:
            raise RuntimeError(f"{self.client_id}: REGACK {ack.return_code} for {topic}")
        return int(ack.topic_id)

    def subscribe(self, topic: str) -> None:
        ack = self.request(Subscribe(msg_id=self._next_id(), topic=topic), SubAck)
        if ack.return_code != ReturnCode.ACCEPTED:
            raise RuntimeError(f"{self.client_id}: SUBACK {ack.return_code} for {topic}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(encode(Disconnect()))
        self.sock.close()


def command_key(payload: bytes) -> str:
    """The (actuator, command) identity of an ``actuators/{id}/set`` payload."""
    body = json.loads(payload)
    return body["actuator_id"] + " " + json.dumps(body["command"], sort_keys=True)


# ---------------------------------------------------------------------------------- actuator
def actuator_main(conn: Any, port: int, broker: tuple[str, int]) -> None:
    """Subscribe actuators/+/set over MQTT-SN; stamp arrivals; count telemetry at the broker."""
    client = SnClient(port, "bench-actuator")
    client.connect()
    client.subscribe("actuators/+/set")
    telemetry = [0]

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.topic.endswith("/telemetry"):
            telemetry[0] += 1

    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-e2e-telemetry")
    sub.on_message = on_message
    sub.connect(broker[0], broker[1])
    sub.subscribe("edge/+/devices/+/telemetry", qos=0)
    sub.loop_start()
    time.sleep(0.3)
    topics: dict[int, str] = {}
    arrivals: list[tuple[str, float]] = []
    errors = 0
    stop = threading.Event()
    sock = client.sock
    sock.settimeout(0.05)

    def loop() -> None:
        nonlocal errors
        while not stop.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            now = time.monotonic()
            try:
                packet = decode(data)
            except MalformedPacket:
                errors += 1
                continue
            if isinstance(packet, Register):
                topics[packet.topic_id] = packet.topic_name
                sock.send(encode(RegAck(packet.topic_id, packet.msg_id, ReturnCode.ACCEPTED)))
            elif isinstance(packet, Publish):
                try:
                    arrivals.append((command_key(packet.data), now))
                except (ValueError, KeyError):
                    errors += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    conn.send({"ready": True})
    while True:
        message = conn.recv()
        if message == "snapshot":
            conn.send({"arrivals": list(arrivals), "telemetry": telemetry[0], "errors": errors})
            arrivals.clear()
            telemetry[0] = 0  # per run, like the arrivals
        elif message == "stop":
            break
    stop.set()
    thread.join(1.0)
    sub.loop_stop()
    sub.disconnect()
    client.close()
    conn.send({"bye": True})


# --------------------------------------------------------------------------------- generator
def generator_main(conn: Any, cfg: dict[str, Any]) -> None:
    port = cfg["port"]
    sensors = [SnClient(port, f"sensor{i}") for i in range(cfg["sensors"])]
    panels = [SnClient(port, f"panel{i + 1}") for i in range(cfg["panels"])]
    sensor_topics, panel_topics = [], []
    for i, client in enumerate(sensors):
        client.connect()
        sensor_topics.append(client.register(f"devices/sensor{i}/telemetry"))
    for i, client in enumerate(panels):
        client.connect()
        panel_topics.append(client.register(f"devices/panel{i + 1}/command"))
    conn.send({"ready": True})

    def send_command(idx: int, text: str) -> float:
        packet = encode(Publish(topic_id=panel_topics[idx], msg_id=0, data=text.encode()))
        now = time.monotonic()
        panels[idx].sock.send(packet)
        return now

    while True:
        message = conn.recv()
        if message["op"] == "stop":
            break
        if message["op"] == "probe":  # one text at a time, spaced: learn its (actuator, command)
            sent = []
            for text in message["texts"]:
                sent.append((text, send_command(0, text)))
                time.sleep(message["gap"])
            conn.send({"sent": sent})
        elif message["op"] == "run":
            texts: list[str] = message["texts"]
            rate: float = message["rate"]
            share: float = message["command_share"]
            duration: float = message["duration"]
            total = int(rate * duration)
            sends: list[tuple[int, float]] = []  # (text index, send time)
            telemetry_sent = 0
            cmd_credit = 0.0
            n_cmd = 0
            start = time.monotonic() + 0.05
            for i in range(total):
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0.0005:
                    time.sleep(delay)
                cmd_credit += share
                if cmd_credit >= 1.0:
                    cmd_credit -= 1.0
                    t = n_cmd % len(texts)
                    sends.append((t, send_command(n_cmd % len(panels), texts[t])))
                    n_cmd += 1
                else:
                    s = telemetry_sent % len(sensors)
                    body = cbor2.dumps(
                        {"temp": 20.0 + (i % 50) / 10, "humidity": 40.0, "co2": 600.0}
                    )
                    packet = Publish(topic_id=sensor_topics[s], msg_id=0, data=body)
                    sensors[s].sock.send(encode(packet))
                    telemetry_sent += 1
            end = time.monotonic()
            conn.send(
                {
                    "sends": sends,
                    "telemetry_sent": telemetry_sent,
                    "start": start,
                    "end": end,
                    "achieved_rate": total / (end - start),
                }
            )
    for client in sensors + panels:
        client.close()
    conn.send({"bye": True})


# ------------------------------------------------------------------------------ orchestration
def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def learn_keys(sent: list[tuple[str, float]], arrivals: list[tuple[str, float]]) -> dict[str, str]:
    """text -> key, for texts that produced exactly one arrival within their gap."""
    bounds = [t for _, t in sent] + [float("inf")]
    produced: dict[str, list[str]] = defaultdict(list)
    for key, at in arrivals:
        for j, (text, t_sent) in enumerate(sent):
            if t_sent <= at < bounds[j + 1]:
                produced[text].append(key)
                break
    single = {text: keys[0] for text, keys in produced.items() if len(keys) == 1}
    counts: dict[str, int] = defaultdict(int)
    for key in single.values():
        counts[key] += 1
    return {text: key for text, key in single.items() if counts[key] == 1}


def match(
    texts: list[str],
    keys: dict[str, str],
    sends: list[tuple[int, float]],
    arrivals: list[tuple[str, float]],
    reuse_s: float,
) -> dict[str, Any]:
    pending: dict[str, deque[float]] = defaultdict(deque)
    events = [(t, 0, keys[texts[i]]) for i, t in sends] + [(t, 1, k) for k, t in arrivals]
    events.sort()
    latencies: list[float] = []
    unexpected = suspicious = 0
    for t, kind, key in events:
        if kind == 0:
            pending[key].append(t)
        elif pending[key]:
            latency = t - pending[key].popleft()
            suspicious += latency > reuse_s
            latencies.append(latency)
        else:
            unexpected += 1
    latencies.sort()
    lost = sum(len(queue) for queue in pending.values())
    return {
        "commands_sent": len(sends),
        "actuator_arrivals": len(arrivals),
        "matched": len(latencies),
        "lost": lost,
        "loss_rate": round(lost / max(len(sends), 1), 6),
        "unexpected_arrivals": unexpected,
        "latency_above_reuse_interval": suspicious,
        "p50_ms": ms(common.percentile(latencies, 50, is_sorted=True)),
        "p90_ms": ms(common.percentile(latencies, 90, is_sorted=True)),
        "p99_ms": ms(common.percentile(latencies, 99, is_sorted=True)),
        "max_ms": ms(latencies[-1] if latencies else None),
        "mean_ms": ms(sum(latencies) / len(latencies) if latencies else None),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, action="append", help="total msg/s (repeatable)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate (<= 40)")
    parser.add_argument("--command-share", type=float, default=0.5)
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--panels", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    common.add_gateway_python_option(parser)
    parser.add_argument(
        "--gateway-env",
        action="append",
        default=[],
        metavar="EGW_KEY=VALUE",
        help="extra gateway environment (repeatable), e.g. EGW_RECOGNIZER__WINDOW_MS=0.5",
    )
    args = parser.parse_args(argv)
    args.rate = args.rate or [1000.0]
    if not 0 < args.duration * len(args.rate) <= 40:
        parser.error("--duration x number of rates must be within (0, 40] s")
    if not 0 < args.command_share <= 1:
        parser.error("--command-share must be within (0, 1]")
    return args


def _call(conn: Any, message: Any, timeout: float) -> Any:
    conn.send(message)
    if not conn.poll(timeout):
        raise RuntimeError(f"no reply to {message if isinstance(message, str) else message['op']}")
    return conn.recv()


def _hard_cap(_signum: int, _frame: Any) -> None:
    raise TimeoutError(f"hard cap of {HARD_CAP_S} s reached")


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": common.machine_info(), "args": vars(args).copy()}
    result["compiled_modules"] = common.compiled_modules(args.gateway_python)
    print(f"gateway: {result['compiled_modules']} modules compiled (mypyc)", file=sys.stderr)
    result["args"]["json"] = str(args.json) if args.json else None
    broker = common.Mosquitto(["set_tcp_nodelay true"]).start()
    gateway = None
    children: list[mp.Process] = []
    pipes: list[Any] = []
    try:
        gw_port = common.free_port(socket.SOCK_DGRAM)
        coap_port = common.free_port(socket.SOCK_DGRAM)
        gateway = common.GatewayProcess(
            gw_port,
            broker.url,
            {
                "EGW_COAP__HOST": HOST,
                "EGW_COAP__PORT": str(coap_port),
                "EGW_MQTTSN__RATE_LIMIT": "1000000",
                "EGW_MQTTSN__RATE_BURST": "1000000",
                **dict(item.split("=", 1) for item in args.gateway_env),
            },
            python=args.gateway_python,
        ).start()
        ctx = mp.get_context("spawn")
        act_conn, act_child = ctx.Pipe()
        gen_conn, gen_child = ctx.Pipe()
        actuator = ctx.Process(
            target=actuator_main, args=(act_child, gw_port, (HOST, broker.port)), daemon=True
        )
        cfg = {"port": gw_port, "sensors": args.sensors, "panels": args.panels}
        generator = ctx.Process(target=generator_main, args=(gen_child, cfg), daemon=True)
        children += [actuator, generator]
        pipes += [act_conn, gen_conn]
        actuator.start()
        generator.start()
        if not act_conn.poll(10) or not gen_conn.poll(10):
            raise RuntimeError("actuator or generator did not get ready")
        act_conn.recv()
        gen_conn.recv()

        # warm-up + learning which (actuator, command) each text produces
        candidates = candidate_texts()
        probe = _call(gen_conn, {"op": "probe", "texts": candidates, "gap": 0.03}, 20)
        time.sleep(0.2)
        snap = _call(act_conn, "snapshot", 5)
        keys = learn_keys(probe["sent"], snap["arrivals"])
        texts = [text for text in candidates if text in keys]
        result["texts"] = {"candidates": len(candidates), "usable": len(texts)}
        if not texts:
            raise RuntimeError("no candidate text produced exactly one distinct actuator command")

        result["runs"] = []
        for rate in args.rate:
            _call(act_conn, "snapshot", 5)  # discard
            cpu0 = common.cpu_seconds(gateway.pid)
            tree0 = common.tree_cpu_seconds(gateway.pid)
            wall0 = time.monotonic()
            rss0 = common.rss_kb(gateway.pid) if gateway.pid else None
            message = {
                "op": "run",
                "texts": texts,
                "rate": rate,
                "command_share": args.command_share,
                "duration": args.duration,
            }
            gen = _call(gen_conn, message, args.duration + 10)
            time.sleep(0.5)  # drain
            cpu1 = common.cpu_seconds(gateway.pid)
            tree1 = common.tree_cpu_seconds(gateway.pid)
            wall1 = time.monotonic()
            rss1 = common.rss_kb(gateway.pid) if gateway.pid else None
            snap = _call(act_conn, "snapshot", 5)
            cmd_rate = rate * args.command_share
            reuse_s = len(texts) / cmd_rate
            row = {
                "rate": rate,
                "achieved_rate": round(gen["achieved_rate"], 1),
                "command_rate": cmd_rate,
                "key_reuse_interval_ms": round(reuse_s * 1000, 2),
                **match(texts, keys, gen["sends"], snap["arrivals"], reuse_s),
                "telemetry_sent": gen["telemetry_sent"],
                "telemetry_at_broker": snap["telemetry"],
                "telemetry_throughput_msg_s": round(
                    snap["telemetry"] / max(gen["end"] - gen["start"], 1e-9), 1
                ),
                "gateway_cpu_share": None
                if cpu0 is None or cpu1 is None
                else round((cpu1 - cpu0) / (wall1 - wall0), 3),
                # the gateway with its recogniser worker process (EGW_RECOGNIZER__WORKER=process)
                "gateway_tree_cpu_share": None
                if tree0 is None or tree1 is None
                else round((tree1 - tree0) / (wall1 - wall0), 3),
                "gateway_rss_kb": [rss0, rss1],
            }
            result["runs"].append(row)
    finally:
        for conn, child, bye in zip(pipes, children, ["stop", {"op": "stop"}], strict=False):
            with contextlib.suppress(OSError, ValueError):
                conn.send(bye)
            child.join(3)
            if child.is_alive():
                child.terminate()
        if gateway is not None:
            gateway.stop()
            gateway.cleanup()
        broker.stop()
    return result


def print_report(result: dict[str, Any]) -> None:
    print(
        f"texts: {result['texts']['usable']} of {result['texts']['candidates']} candidates usable"
    )
    head = (
        f"{'rate':>6} {'achieved':>8} {'cmds':>6} {'lost':>5} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'telem/s':>8} {'gw CPU':>6} {'+wkr':>6} {'gw RSS MB':>9}"
    )
    print(head)
    for row in result["runs"]:
        rss = row["gateway_rss_kb"][1]
        print(
            f"{row['rate']:>6.0f} {row['achieved_rate']:>8.0f} {row['commands_sent']:>6} "
            f"{row['lost']:>5} {row['p50_ms']!s:>7} {row['p90_ms']!s:>7} {row['p99_ms']!s:>7} "
            f"{row['max_ms']!s:>7} {row['telemetry_throughput_msg_s']:>8.0f} "
            f"{row['gateway_cpu_share']!s:>6} {row['gateway_tree_cpu_share']!s:>6}"
            f" {(rss or 0) / 1024:>9.1f}"
        )
        if row["latency_above_reuse_interval"] and (row["lost"] or row["unexpected_arrivals"]):
            print(
                f"  warning: {row['latency_above_reuse_interval']} latencies exceed the key reuse"
                f" interval ({row['key_reuse_interval_ms']} ms): pairing may be shifted by a loss"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, _hard_cap)
    signal.alarm(HARD_CAP_S)
    try:
        result = run(args)
    finally:
        signal.alarm(0)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
