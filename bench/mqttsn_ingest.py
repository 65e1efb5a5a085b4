"""MQTT-SN ingest benchmark: many UDP clients -> gateway -> broker -> a counting subscriber.

The gateway (``python -m gateway run``), the load generator(s), the broker (a private mosquitto
unless ``--broker-url``) and the counting subscriber (paho-mqtt) are separate processes.

    python3 bench/mqttsn_ingest.py                       # 1000 clients, 20000 msg/s, 10 s, QoS 0+1
    python3 bench/mqttsn_ingest.py --clients 100 --rate 2000 --duration 3       # quick check
    python3 bench/mqttsn_ingest.py --clients 10000 --generators 2 --json out.json

Phases: connect storm (CONNECT + REGISTER from N sockets, retransmitted after a timeout),
gateway RSS before/after the storm, a QoS 0 phase at the offered rate, then a QoS 1 phase with
one message in flight per client (the next one only after the PUBACK, which the gateway sends
after the broker's PUBACK), the offered rate acting as a cap.

Every payload starts with ``!dI``: the wall-clock send time (time.time()) and a sequence number
whose two top bits name the phase, so the subscriber can count per phase, detect duplicates and
measure publish -> subscriber latency. The subscriber subscribes ``edge/site1/bench/#`` at QoS 1
by default: a QoS 0 publish is delivered at QoS 0 anyway (the lower of the two), and for the QoS 1
phase a QoS 1 subscription makes broker -> subscriber lossless, so a missing message is one the
gateway/bridge lost; ``--sub-qos 0`` makes the subscriber cheaper (no PUBACKs of its own).

CPU seconds (/proc/PID/stat) and run-queue wait (/proc/PID/task/*/schedstat) of every process
are sampled per phase, with the machine's busy share and CPU pressure, to see which process is the
bottleneck or whether the cores are simply oversubscribed; a warning is printed when the generator
did not achieve 95 % of the offered rate, or when one process kept a core >= 90 % busy.

The private mosquitto gets ``set_tcp_nodelay true`` (``--broker-nagle`` keeps its default): with
Nagle on the broker's sockets its small PUBACKs and forwards wait for delayed ACKs, which on
loopback turned a 20k msg/s QoS 1 run window-bound at ~11k msg/s with ~90 ms PUBACK latency.
``--no-broker`` runs the gateway local-only (nothing is forwarded or counted at a subscriber).
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import math
import multiprocessing as mp
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # also puts the repository root on sys.path

from gateway.mqttsn.codec import MalformedPacket, decode, encode
from gateway.mqttsn.constants import QoS, ReturnCode
from gateway.mqttsn.packets import (
    ConnAck,
    Connect,
    Packet,
    PubAck,
    Publish,
    RegAck,
    Register,
)

_fmt = common.fmt

HOST = common.HOST
SITE_PREFIX = "edge/site1/"
TOPIC_FILTER = SITE_PREFIX + "bench/#"
STAMP = struct.Struct("!dI")  # send time (time.time()), sequence number
PHASE_SHIFT = 30
SEQ_MASK = (1 << PHASE_SHIFT) - 1
PHASES = ("qos0", "qos1", "probe")
PHASE_QOS0, PHASE_QOS1, PHASE_PROBE = range(3)

KEEPALIVE = 600  # s; longer than any run, so no PINGREQ is needed
REGISTER_MSG_ID = 1
BATCH = 256  # datagrams sent between two looks at the replies
MAX_EVENTS = 2048
SCAN_INTERVAL = 0.1  # s between retransmission scans
DRAIN_QUIET = 1.0  # s without a new message at the subscriber = drained
DRAIN_CAP = 10.0  # s, hard cap of a drain wait
ACK_WAIT_CAP = 5.0  # s after the QoS 1 phase to collect outstanding PUBACKs
MAX_DURATION = 120.0
MAX_CLIENTS = 60_000
FD_MARGIN = 1000


# =============================================================================== load generator
class Generator:
    """Clients ``indices`` of the run, one non-blocking connected UDP socket each, on one epoll."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.gen_id: int = cfg["gen_id"]
        self.n_gen: int = cfg["n_gen"]
        self.indices: list[int] = cfg["indices"]
        self.gw = (HOST, cfg["gw_port"])
        self.pad = b"\0" * (cfg["payload_size"] - STAMP.size)
        self.retry_timeout: float = cfg["retry_timeout"]
        self.max_retries: int = cfg["max_retries"]
        self.socks: list[socket.socket] = []
        self.fd_index: dict[int, int] = {}
        self.topic_ids: list[int] = []
        self.epoll = select.epoll()
        self.counter = 0  # messages numbered by this generator
        self.unexpected: Counter[str] = Counter()

    # --- plumbing ---------------------------------------------------------------------------
    def open(self) -> dict[str, Any]:
        soft, hard = common.raise_nofile(len(self.indices) + FD_MARGIN)
        for _ in self.indices:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(self.gw)
            self.fd_index[sock.fileno()] = len(self.socks)
            self.socks.append(sock)
            self.epoll.register(sock.fileno(), select.EPOLLIN)
        self.topic_ids = [0] * len(self.socks)
        return {"sockets": len(self.socks), "nofile_soft": soft, "nofile_hard": hard}

    def close(self) -> None:
        self.epoll.close()
        for sock in self.socks:
            sock.close()

    def _poll(self, timeout: float, on_packet: Callable[[int, Packet, float], None]) -> int:
        """One epoll wait; one datagram per ready socket (level-triggered: the rest come next)."""
        events = self.epoll.poll(timeout, MAX_EVENTS)
        socks = self.socks
        fd_index = self.fd_index
        monotonic = time.monotonic
        for fd, _mask in events:
            idx = fd_index[fd]
            try:
                data = socks[idx].recv(2048)
            except BlockingIOError:
                continue
            except OSError as exc:  # ICMP port unreachable: the gateway is gone
                self.unexpected[f"recv_{type(exc).__name__}"] += 1
                continue
            try:
                packet = decode(data)
            except MalformedPacket:
                self.unexpected["malformed"] += 1
                continue
            on_packet(idx, packet, monotonic())
        return len(events)

    def _seq(self, phase: int) -> int:
        seq = (self.counter * self.n_gen + self.gen_id) & SEQ_MASK
        self.counter += 1
        return (phase << PHASE_SHIFT) | seq

    def _send(self, idx: int, packet: Packet) -> bool:
        try:
            self.socks[idx].send(encode(packet))
        except OSError as exc:
            self.unexpected[f"send_{type(exc).__name__}"] += 1
            return False
        return True

    @staticmethod
    def _wait_until(start_at: float) -> None:
        delay = start_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    # --- connect storm ------------------------------------------------------------------------
    def storm(self, start_at: float, cap_s: float) -> dict[str, Any]:
        n = len(self.socks)
        state = bytearray(n)  # 0 new, 1 CONNECT sent, 2 REGISTER sent, 3 registered, 4 gave up
        deadline = [0.0] * n
        tries = [0] * n
        counts: Counter[str] = Counter()
        topics = [f"bench/c{i}" for i in self.indices]
        done_at = 0.0
        done = 0
        cpu0 = time.process_time()

        def connect(idx: int) -> None:
            self._send(idx, Connect(f"bench-{self.indices[idx]}", KEEPALIVE))

        def register(idx: int) -> None:
            self._send(idx, Register(0, REGISTER_MSG_ID, topics[idx]))

        def on_packet(idx: int, packet: Packet, now: float) -> None:
            nonlocal done, done_at
            st = state[idx]
            if isinstance(packet, ConnAck) and st == 1:
                if packet.return_code is not ReturnCode.ACCEPTED:
                    counts[f"connack_{packet.return_code.name.lower()}"] += 1
                    return  # retried after the timeout
                state[idx] = 2
                tries[idx] = 0
                deadline[idx] = now + self.retry_timeout
                register(idx)
            elif isinstance(packet, RegAck) and st == 2 and packet.msg_id == REGISTER_MSG_ID:
                if packet.return_code is not ReturnCode.ACCEPTED:
                    counts[f"regack_{packet.return_code.name.lower()}"] += 1
                    return
                state[idx] = 3
                self.topic_ids[idx] = packet.topic_id
                done += 1
                done_at = now
            elif not (isinstance(packet, (ConnAck, RegAck)) and st == 3):
                self.unexpected[f"storm_{type(packet).__name__}"] += 1

        self._wait_until(start_at)
        t_first = time.monotonic()
        for idx in range(n):
            connect(idx)
            state[idx] = 1
            deadline[idx] = time.monotonic() + self.retry_timeout
            if idx % BATCH == BATCH - 1:
                self._poll(0, on_packet)
        t_sent = time.monotonic()
        cap_at = t_first + cap_s
        next_scan = t_sent + SCAN_INTERVAL
        failed = 0
        while done + failed < n:
            now = time.monotonic()
            if now > cap_at:
                break
            self._poll(min(SCAN_INTERVAL, max(0.0, next_scan - now)), on_packet)
            now = time.monotonic()
            if now < next_scan:
                continue
            next_scan = now + SCAN_INTERVAL
            for idx in range(n):
                st = state[idx]
                if st in (1, 2) and now >= deadline[idx]:
                    if tries[idx] >= self.max_retries:
                        state[idx] = 4
                        failed += 1
                        continue
                    tries[idx] += 1
                    counts["retransmit_connect" if st == 1 else "retransmit_register"] += 1
                    deadline[idx] = now + self.retry_timeout
                    if st == 1:
                        connect(idx)
                    else:
                        register(idx)
        return {
            "t_first": t_first,
            "t_all_connects_sent": t_sent,
            "t_last": done_at or time.monotonic(),
            "registered": done,
            "failed": n - done,
            "counts": dict(counts),
            "cpu_s": time.process_time() - cpu0,
        }

    # --- end-to-end probe ------------------------------------------------------------------
    def probe(self, timeout: float) -> dict[str, Any]:
        """One QoS 1 PUBLISH until a PUBACK ACCEPTED: the gateway's broker link is up."""
        idx = next((i for i, t in enumerate(self.topic_ids) if t), None)
        if idx is None:
            return {"ok": False, "reason": "no registered client"}
        t0 = time.monotonic()
        msg_id = 2
        codes: Counter[str] = Counter()
        acked = False

        def on_packet(i: int, packet: Packet, now: float) -> None:
            nonlocal acked
            if i == idx and isinstance(packet, PubAck) and packet.msg_id == msg_id:
                codes[packet.return_code.name.lower()] += 1
                acked = packet.return_code is ReturnCode.ACCEPTED

        while not acked and time.monotonic() - t0 < timeout:
            msg_id += 1
            data = STAMP.pack(time.time(), self._seq(PHASE_PROBE)) + self.pad
            self._send(idx, Publish(self.topic_ids[idx], msg_id, data, QoS.AT_LEAST_ONCE))
            until = time.monotonic() + 0.25
            while not acked and time.monotonic() < until:
                self._poll(0.05, on_packet)
        return {"ok": acked, "seconds": time.monotonic() - t0, "pubacks": dict(codes)}

    # --- QoS 0 ---------------------------------------------------------------------------------
    def qos0(self, rate: float, duration: float, start_at: float) -> dict[str, Any]:
        active = [i for i, t in enumerate(self.topic_ids) if t]
        counts: Counter[str] = Counter()

        def on_packet(idx: int, packet: Packet, now: float) -> None:
            counts[f"reply_{type(packet).__name__}"] += 1

        if not active or rate <= 0:
            return {"sent": 0, "t_first": None, "t_last": None, "cpu_s": 0.0, "counts": {}}
        socks = self.socks
        topic_ids = self.topic_ids
        pad = self.pad
        pack = STAMP.pack
        wall = time.time
        monotonic = time.monotonic
        qos0 = QoS.AT_MOST_ONCE
        phase_bits = PHASE_QOS0 << PHASE_SHIFT
        n_gen, gen_id = self.n_gen, self.gen_id
        counter = self.counter
        sent = 0
        errors = 0
        pos = 0
        n_active = len(active)
        max_lag = 0.0
        self._wait_until(start_at)
        cpu0 = time.process_time()
        t0 = monotonic()
        end = t0 + duration
        while True:
            now = monotonic()
            if now >= end:
                break
            due = min(int((now - t0) * rate) + 1, int(duration * rate)) - sent
            if due <= 0:
                wait = (sent + 1) / rate - (now - t0)
                self._poll(min(max(wait, 0.0), 0.005, end - now), on_packet)
                continue
            max_lag = max(max_lag, due / rate)
            for _ in range(min(due, BATCH)):
                idx = active[pos]
                pos += 1
                if pos == n_active:
                    pos = 0
                seq = phase_bits | ((counter * n_gen + gen_id) & SEQ_MASK)
                counter += 1
                data = encode(Publish(topic_ids[idx], 0, pack(wall(), seq) + pad, qos0))
                try:
                    socks[idx].send(data)
                except OSError:
                    errors += 1
                    continue
                sent += 1
            self._poll(0, on_packet)
        t_last = monotonic()
        self.counter = counter
        # Look at late replies (e.g. DISCONNECT for an unknown client) for a moment.
        until = monotonic() + 0.05
        while monotonic() < until:
            self._poll(0.01, on_packet)
        return {
            "sent": sent,
            "send_errors": errors,
            "t_first": t0,
            "t_last": t_last,
            "max_lag_s": max_lag,
            "cpu_s": time.process_time() - cpu0,
            "counts": dict(counts),
        }

    # --- QoS 1 ---------------------------------------------------------------------------------
    def qos1(
        self, rate: float, duration: float, start_at: float, ack_wait: float
    ) -> dict[str, Any]:
        n = len(self.socks)
        active = [i for i, t in enumerate(self.topic_ids) if t]
        ready: deque[int] = deque(active)
        first_tx = [0.0] * n  # first transmission of the message in flight; 0 = none
        last_tx = [0.0] * n
        retries = [0] * n
        msg_ids = [REGISTER_MSG_ID] * n
        in_flight_pkt: list[Publish | None] = [None] * n
        latencies = array.array("d")
        counts: Counter[str] = Counter()
        state = {"acked": 0, "rejected": 0, "inflight": 0, "t_last_ack": 0.0, "sending": True}
        socks = self.socks
        topic_ids = self.topic_ids
        pad = self.pad
        pack = STAMP.pack
        wall = time.time
        monotonic = time.monotonic
        qos1 = QoS.AT_LEAST_ONCE
        accepted = ReturnCode.ACCEPTED

        def on_packet(idx: int, packet: Packet, now: float) -> None:
            if type(packet) is PubAck and first_tx[idx] and packet.msg_id == msg_ids[idx]:
                latencies.append(now - first_tx[idx])
                first_tx[idx] = 0.0
                in_flight_pkt[idx] = None
                state["inflight"] -= 1
                state["t_last_ack"] = now
                if packet.return_code is accepted:
                    state["acked"] += 1
                else:
                    state["rejected"] += 1
                    counts[f"puback_{packet.return_code.name.lower()}"] += 1
                if state["sending"]:
                    ready.append(idx)
            else:
                counts[f"reply_{type(packet).__name__}"] += 1

        def retransmit_scan(now: float) -> None:
            for idx in range(n):
                if first_tx[idx] and now - last_tx[idx] >= self.retry_timeout:
                    packet = in_flight_pkt[idx]
                    if retries[idx] >= self.max_retries or packet is None:
                        first_tx[idx] = 0.0  # give up on this client
                        in_flight_pkt[idx] = None
                        state["inflight"] -= 1
                        counts["client_stalled"] += 1
                        continue
                    retries[idx] += 1
                    counts["retransmit"] += 1
                    last_tx[idx] = now
                    dup = Publish(packet.topic_id, packet.msg_id, packet.data, qos1, dup=True)
                    with contextlib.suppress(OSError):
                        socks[idx].send(encode(dup))

        if not active or rate <= 0:
            return {"sent": 0, "acked": 0, "t_first": None, "t_last": None, "latencies": b""}
        sent = 0
        errors = 0
        window_limited_s = 0.0
        counter = self.counter
        phase_bits = PHASE_QOS1 << PHASE_SHIFT
        n_gen, gen_id = self.n_gen, self.gen_id
        self._wait_until(start_at)
        cpu0 = time.process_time()
        t0 = monotonic()
        end = t0 + duration
        total = int(duration * rate)
        next_scan = t0 + SCAN_INTERVAL
        while True:
            now = monotonic()
            if now >= end:
                break
            if now >= next_scan:
                retransmit_scan(now)
                next_scan = now + SCAN_INTERVAL
            due = min(int((now - t0) * rate) + 1, total) - sent
            if due <= 0 or not ready:
                wait = (sent + 1) / rate - (now - t0) if due <= 0 else 0.005
                t_wait = monotonic()
                self._poll(min(max(wait, 0.0), 0.005, end - now), on_packet)
                if due > 0:
                    window_limited_s += monotonic() - t_wait
                continue
            for _ in range(min(due, BATCH, len(ready))):
                idx = ready.popleft()
                msg_id = msg_ids[idx] + 1
                if msg_id > 0xFFFF:
                    msg_id = 2
                msg_ids[idx] = msg_id
                seq = phase_bits | ((counter * n_gen + gen_id) & SEQ_MASK)
                counter += 1
                packet = Publish(topic_ids[idx], msg_id, pack(wall(), seq) + pad, qos1)
                stamp = monotonic()
                try:
                    socks[idx].send(encode(packet))
                except OSError:
                    errors += 1
                    ready.append(idx)
                    continue
                first_tx[idx] = last_tx[idx] = stamp
                retries[idx] = 0
                in_flight_pkt[idx] = packet
                state["inflight"] += 1
                sent += 1
            self._poll(0, on_packet)
        t_last_send = monotonic()
        state["sending"] = False
        self.counter = counter
        # Collect the PUBACKs still outstanding (bounded).
        give_up = t_last_send + ack_wait
        while state["inflight"] > 0 and monotonic() < give_up:
            self._poll(0.01, on_packet)
            now = monotonic()
            if now >= next_scan:
                retransmit_scan(now)
                next_scan = now + SCAN_INTERVAL
        counts["unacked_at_end"] = state["inflight"]
        return {
            "sent": sent,
            "send_errors": errors,
            "acked": state["acked"],
            "rejected": state["rejected"],
            "t_first": t0,
            "t_last_send": t_last_send,
            "t_last": state["t_last_ack"] or t_last_send,
            "window_limited_s": window_limited_s,
            "cpu_s": time.process_time() - cpu0,
            "counts": dict(counts),
            "latencies": latencies.tobytes(),
        }


def generator_main(
    conn: Any, cfg: dict[str, Any], generator_cls: type[Generator] | None = None
) -> None:
    """A generator process: opens its sockets, then runs the commands the parent sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by pid
    gen: Generator | None = None
    try:
        gen = (generator_cls or Generator)(cfg)
        gen.conn = conn  # a subclass may report progress to the parent while it runs
        conn.send(("ok", gen.open()))
        while True:
            cmd, kwargs = conn.recv()
            if cmd == "stop":
                break
            result = getattr(gen, cmd)(**kwargs)
            result["unexpected"] = dict(gen.unexpected)
            gen.unexpected.clear()
            conn.send(("ok", result))
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        if gen is not None:
            gen.close()


# ================================================================================== subscriber
def subscriber_main(conn: Any, host: str, port: int, topic_filter: str, qos: int) -> None:
    """A paho-mqtt subscriber in its own process; counts per phase, answers the parent's pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    n = len(PHASES)
    received = [0] * n
    seen: list[set[int]] = [set() for _ in range(n)]
    latencies = [array.array("d") for _ in range(n)]
    first_rx = [0.0] * n
    last_rx = [0.0] * n
    other: Counter[str] = Counter()
    unpack = STAMP.unpack_from
    wall = time.time
    monotonic = time.monotonic
    subscribed = threading.Event()

    def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
        now = wall()
        payload = msg.payload
        if len(payload) < STAMP.size:
            other["short_payload"] += 1
            return
        sent_at, seq = unpack(payload)
        phase = seq >> PHASE_SHIFT
        if phase >= n:
            other["bad_phase"] += 1
            return
        received[phase] += 1
        seen[phase].add(seq)
        latencies[phase].append(now - sent_at)
        mono = monotonic()
        if not first_rx[phase]:
            first_rx[phase] = mono
        last_rx[phase] = mono

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}",
        protocol=paho.MQTTv311, clean_session=True,
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    try:
        client.connect(host, port, keepalive=60)
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        client.subscribe(topic_filter, qos)
        client.loop_start()
        conn.send(("ok", {"subscribed": subscribed.wait(10)}))
        cpu0 = time.process_time()
        while True:
            cmd = conn.recv()
            if cmd == "status":
                conn.send(("ok", {"received": list(received), "last_rx": list(last_rx)}))
            elif cmd == "report":
                report = {}
                for phase, name in enumerate(PHASES):
                    lat = sorted(latencies[phase])
                    report[name] = {
                        "received": received[phase],
                        "unique": len(seen[phase]),
                        "duplicates": received[phase] - len(seen[phase]),
                        "first_rx": first_rx[phase] or None,
                        "last_rx": last_rx[phase] or None,
                        "latency_ms": _latency_summary(lat),
                    }
                report["other"] = dict(other)
                report["cpu_s"] = time.process_time() - cpu0
                conn.send(("ok", report))
            else:
                break
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
            client.loop_stop()


def _latency_summary(sorted_seconds: Any) -> dict[str, float | None]:
    """p50/p99/max in milliseconds of an already sorted sequence of seconds."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000.0, 3)

    return {
        "p50": ms(common.percentile(sorted_seconds, 50, is_sorted=True)),
        "p99": ms(common.percentile(sorted_seconds, 99, is_sorted=True)),
        "max": ms(sorted_seconds[-1]) if len(sorted_seconds) else None,
    }


# ================================================================================ orchestration
class Child:
    """A multiprocessing child driven over a pipe; always stopped by its pid."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.name = name
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_conn, *args), name=name, daemon=True)
        self.proc.start()
        child_conn.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def send(self, message: Any) -> None:
        self.conn.send(message)

    def reply(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.name} did not answer within {timeout:.0f} s")
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.name} failed:\n{value}")
        return value

    def call(self, message: Any, timeout: float) -> Any:
        self.send(message)
        return self.reply(timeout)

    def stop(self, goodbye: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(goodbye)
        self.proc.join(3.0)
        if self.proc.is_alive():
            common.stop_pid(self.pid)
        self.proc.join(1.0)
        self.conn.close()


class CpuMeter:
    """CPU use of the benchmark's processes and of the machine, sampled at phase boundaries.

    Per process: CPU seconds (utime + stime, all threads), util = CPU s / wall s (1.0 = one core),
    and run-queue wait (runnable but no free core). Per phase also the host's busy fraction of all
    its CPUs (/proc/stat) and CPU pressure (share of the wall time in which some task waited).
    """

    def __init__(self) -> None:
        self.pids: dict[str, int | None] = {}
        self.last: dict[str, tuple[float | None, float | None]] = {}
        self.t_last = time.monotonic()
        self.host_last = common.host_cpu_jiffies()
        self.psi_last = common.cpu_pressure_us()
        self.phases: dict[str, dict[str, Any]] = {}

    def add(self, name: str, pid: int | None) -> None:
        self.pids[name] = pid
        self.last[name] = (common.cpu_seconds(pid), common.sched_wait_seconds(pid))

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        wall = now - self.t_last
        row: dict[str, Any] = {"wall_s": round(wall, 3)}
        current: dict[str, tuple[float | None, float | None]] = {}
        for name, pid in self.pids.items():
            used_now, wait_now = common.cpu_seconds(pid), common.sched_wait_seconds(pid)
            current[name] = (used_now, wait_now)
            used_before, wait_before = self.last.get(name, (None, None))
            if used_now is None or used_before is None or wall <= 0:
                row[name] = None
                continue
            cell: dict[str, Any] = {"cpu_s": round(used_now - used_before, 2),
                                    "util": round((used_now - used_before) / wall, 2)}
            if wait_now is not None and wait_before is not None:
                cell["runq_wait_s"] = round(wait_now - wait_before, 3)
            row[name] = cell
        host = common.host_cpu_jiffies()
        if host is not None and self.host_last is not None and host[1] > self.host_last[1]:
            row["host_busy"] = round(
                (host[0] - self.host_last[0]) / (host[1] - self.host_last[1]), 2
            )
        psi = common.cpu_pressure_us()
        if psi is not None and self.psi_last is not None and wall > 0:
            row["cpu_pressure"] = round((psi - self.psi_last) / 1e6 / wall, 2)
        self.phases[phase] = row
        self.last = current
        self.t_last = now
        self.host_last = host
        self.psi_last = psi


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="MQTT-SN ingest benchmark (gateway, generators, broker and subscriber are"
        " separate processes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1000, help="MQTT-SN clients (UDP sockets)")
    parser.add_argument("--rate", type=float, default=20000, help="offered msg/s (QoS 1: a cap)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per publish phase")
    parser.add_argument("--qos", choices=("0", "1", "both"), default="both")
    parser.add_argument("--payload-size", type=int, default=16,
                        help=f"bytes, at least {STAMP.size} (send time + sequence number)")
    parser.add_argument("--broker-url", default="",
                        help="mqtt://127.0.0.1:PORT of a running broker; default: a private"
                        " mosquitto on a free loopback port")
    parser.add_argument("--mosquitto-conf", action="append", default=[], metavar="LINE",
                        help="extra line for the private mosquitto's config (repeatable), e.g."
                        " 'set_tcp_nodelay true'")
    parser.add_argument("--broker-nagle", action="store_true",
                        help="keep mosquitto's default Nagle algorithm on its sockets (by default"
                        " the private mosquitto gets set_tcp_nodelay true: with Nagle, its small"
                        " PUBACKs and forwards wait for delayed ACKs, up to tens of ms)")
    parser.add_argument("--no-broker", action="store_true",
                        help="run the gateway without a broker (nothing is delivered/counted)")
    parser.add_argument("--sub-qos", type=int, choices=(0, 1), default=1,
                        help="QoS of the counting subscriber's subscription")
    parser.add_argument("--generators", type=int, default=1, help="load-generator processes")
    parser.add_argument("--retry-timeout", type=float, default=1.0,
                        help="seconds before a CONNECT/REGISTER/QoS 1 PUBLISH is retransmitted")
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.payload_size < STAMP.size:
        parser.error(f"--payload-size must be at least {STAMP.size}")
    if args.payload_size > 1300:
        parser.error("--payload-size must fit one datagram (<= 1300)")
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be 1..{MAX_CLIENTS}")
    if not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:.0f}]")
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if not 1 <= args.generators <= 64 or args.generators > args.clients:
        parser.error("--generators must be 1..64 and at most --clients")
    if args.broker_url and args.no_broker:
        parser.error("--broker-url and --no-broker exclude each other")
    return args


def _loopback_broker(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or parts.hostname is None:
        raise SystemExit(f"--broker-url must look like mqtt://127.0.0.1:PORT, not {url!r}")
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("--broker-url must be a loopback address (127.0.0.1)")
    return "127.0.0.1", parts.port or 1883


class HardCap(Exception):
    """The run exceeded its time budget (SIGALRM) or was asked to stop (SIGTERM)."""


def _raise_hard_cap(signum: int, _frame: Any) -> None:
    raise HardCap(f"stopped by {signal.Signals(signum).name}")


def _adjust_clients(args: argparse.Namespace, warnings: list[str]) -> None:
    """Lower --clients when RLIMIT_NOFILE's hard limit or the ephemeral port range is too small."""
    _soft, hard = common.raise_nofile(0)
    per_gen = math.ceil(args.clients / args.generators)
    if hard != -1 and per_gen + FD_MARGIN > hard:
        fit = max(1, (hard - FD_MARGIN) * args.generators)
        warnings.append(
            f"RLIMIT_NOFILE hard limit is {hard}: {args.clients} clients need"
            f" {per_gen + FD_MARGIN} descriptors per generator; reduced to {fit} clients"
            " (use more --generators or raise the hard limit)"
        )
        args.clients = fit
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return
    ports = high - low + 1 - 200  # leave some for everybody else
    if args.clients > ports:
        warnings.append(f"only {high - low + 1} ephemeral ports: reduced to {ports} clients")
        args.clients = ports


def _wait_drained(
    subscriber: Child, phase: int, expected: int, cap: float = DRAIN_CAP
) -> dict[str, Any]:
    """Poll the subscriber until it has `expected` messages or none came for DRAIN_QUIET s."""
    t0 = time.monotonic()
    last_count = -1
    last_change = t0
    while True:
        status = subscriber.call("status", 5.0)
        count = status["received"][phase]
        now = time.monotonic()
        if count != last_count:
            last_count = count
            last_change = now
        if count >= expected:
            break
        if now - last_change >= DRAIN_QUIET or now - t0 >= cap:
            break
        time.sleep(0.05)
    waited = time.monotonic() - t0
    return {"waited_s": round(waited, 3), "received": last_count, "capped": waited >= cap}


def _merge_latencies(results: list[dict[str, Any]]) -> list[float]:
    merged = array.array("d")
    for result in results:
        merged.frombytes(result.get("latencies", b""))
    return sorted(merged)


def _sum(results: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get(key) or 0) for r in results)


def _merge_counts(results: list[dict[str, Any]], *keys: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for result in results:
        for key in keys:
            total.update(result.get(key) or {})
    return dict(total)


def _rate(count: int | None, start: float | None, end: float | None) -> float | None:
    if count is None or start is None or end is None or end <= start:
        return None
    return round(count / (end - start), 1)


def _busiest(row: dict[str, Any]) -> tuple[str, float] | None:
    """The process of a CPU-table row that kept a core >= 90 % busy, if any."""
    best: tuple[str, float] | None = None
    for name, cell in row.items():
        if isinstance(cell, dict) and (cell.get("util") or 0.0) >= 0.9 and (
            best is None or cell["util"] > best[1]
        ):
            best = (name, cell["util"])
    return best


def _run_phase(
    name: str,
    args: argparse.Namespace,
    generators: list[Child],
    subscriber: Child | None,
    cpu: CpuMeter,
    gateway: common.GatewayProcess,
    warnings: list[str],
    clients: int,
) -> dict[str, Any]:
    qos = 0 if name == "qos0" else 1
    phase = PHASE_QOS0 if qos == 0 else PHASE_QOS1
    per_gen_rate = args.rate / len(generators)
    udp0 = common.udp_counters()
    cpu.mark(f"gap_before_{name}")
    start_at = time.monotonic() + 0.2
    kwargs: dict[str, Any] = {"rate": per_gen_rate, "duration": args.duration, "start_at": start_at}
    if qos == 1:
        kwargs["ack_wait"] = ACK_WAIT_CAP
    for gen in generators:
        gen.send((name, kwargs))
    timeout = args.duration + ACK_WAIT_CAP + 30
    results = [gen.reply(timeout) for gen in generators]
    cpu.mark(f"{name}_send")
    sent = _sum(results, "sent")
    t_first = min((r["t_first"] for r in results if r.get("t_first")), default=None)
    t_last_send = max(
        (r.get("t_last_send") or r["t_last"] for r in results if r.get("t_last")), default=None
    )
    drain: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    if subscriber is not None:
        drain = _wait_drained(subscriber, phase, sent)
        report = subscriber.call("report", 30.0)[name]
        if drain["capped"]:
            warnings.append(f"{name}: the subscriber was still receiving after the"
                            f" {DRAIN_CAP:.0f} s drain cap; messages after it count as lost")
    cpu.mark(f"{name}_drain")
    busiest = _busiest(cpu.phases.get(f"{name}_send", {}))
    if busiest is not None:
        warnings.append(f"{name}: {busiest[0]} used {busiest[1]:.0%} of a core while sending:"
                        " probably the bottleneck")
    udp1 = common.udp_counters()
    gen_cpu = sum(float(r.get("cpu_s") or 0.0) for r in results)
    achieved = _rate(sent, t_first, t_last_send)
    out: dict[str, Any] = {
        "offered_rate": args.rate,
        "sent": sent,
        "achieved_send_rate": achieved,
        "send_errors": _sum(results, "send_errors"),
    }
    if report is not None:
        delivered = report["unique"]
        out.update({
            "delivered": delivered,
            "lost": sent - delivered,
            "duplicates": report["duplicates"],
            "throughput": _rate(delivered, t_first, report["last_rx"]),
            "latency_ms": report["latency_ms"],
            "drain": drain,
        })
    else:
        out.update({"delivered": None, "lost": None, "throughput": None,
                    "latency_ms": {"p50": None, "p99": None}})
    if qos == 1:
        acked = _sum(results, "acked")
        t_last_ack = max((r["t_last"] for r in results if r.get("t_last")), default=None)
        lat = _merge_latencies(results)
        out.update({
            "acked": acked,
            "rejected": _sum(results, "rejected"),
            "acked_rate": _rate(acked, t_first, t_last_ack),
            "delivered_rate": out["throughput"],
            "puback_latency_ms": _latency_summary(lat),
            "window_limited_s": round(
                sum(r.get("window_limited_s", 0.0) for r in results) / len(results), 3
            ),
        })
        mean_lat = sum(lat) / len(lat) if lat else None
        out["closed_loop_limit_rate"] = (
            round(clients / mean_lat, 1) if mean_lat else None
        )
    out["generator"] = {
        "cpu_s": round(gen_cpu, 3),
        "events": _merge_counts(results, "counts", "unexpected"),
        "max_lag_s": max((r.get("max_lag_s", 0.0) for r in results), default=0.0),
    }
    if udp0 and udp1:
        out["udp_delta"] = {
            key: udp1[key] - udp0[key]
            for key in ("InDatagrams", "RcvbufErrors", "SndbufErrors", "InErrors", "NoPorts")
            if key in udp0 and key in udp1
        }
    out["gateway_rss_kb"] = common.rss_kb(gateway.pid) if gateway.pid else None
    send_window = (t_last_send - t_first) if t_first and t_last_send else 0.0
    out["generator"]["cpu_util"] = round(gen_cpu / send_window / len(generators), 2) if (
        send_window > 0) else None
    if achieved is not None and achieved < 0.95 * args.rate:
        util = out["generator"]["cpu_util"] or 0.0
        if qos == 0 or util >= 0.9:
            warnings.append(
                f"{name}: the generator achieved {achieved:.0f} msg/s, below 95% of the offered"
                f" {args.rate:.0f} msg/s (generator CPU {util:.0%} per process): the load"
                " generator may be the bottleneck; try --generators 2 or a lower --rate"
            )
        else:
            warnings.append(
                f"{name}: achieved {achieved:.0f} msg/s < 95% of {args.rate:.0f}: limited by the"
                f" window of 1 in flight per client ({clients} clients / mean PUBACK"
                f" latency = {out.get('closed_loop_limit_rate')} msg/s), not by the generator"
                f" (CPU {util:.0%})"
            )
    return out


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The whole benchmark; fills `result` as it goes, so a failed run still reports."""
    warnings: list[str] = []
    _adjust_clients(args, warnings)
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    phases = ("qos0", "qos1") if args.qos == "both" else (f"qos{args.qos}",)
    storm_cap = 10.0 + args.clients / 500.0
    budget = 40.0 + storm_cap + len(phases) * (args.duration + ACK_WAIT_CAP + DRAIN_CAP + 5)
    signal.signal(signal.SIGALRM, _raise_hard_cap)
    signal.signal(signal.SIGTERM, _raise_hard_cap)
    signal.alarm(math.ceil(budget))

    result.update({
        "machine": common.machine_info(),
        "params": {
            "clients": args.clients, "rate": args.rate, "duration": args.duration,
            "qos": args.qos, "payload_size": args.payload_size, "generators": args.generators,
            "sub_qos": None if args.no_broker else args.sub_qos,
            "retry_timeout": args.retry_timeout, "max_retries": args.max_retries,
            "broker": "none" if args.no_broker else (args.broker_url or "private mosquitto"),
            "mosquitto_conf": args.mosquitto_conf,
            "broker_nagle": args.broker_nagle,
            "time_budget_s": math.ceil(budget),
        },
        "warnings": warnings,
    })
    mosquitto: common.Mosquitto | None = None
    gateway: common.GatewayProcess | None = None
    subscriber: Child | None = None
    generators: list[Child] = []
    cpu = CpuMeter()
    t_run = time.monotonic()
    try:
        broker_url = ""
        if not args.no_broker:
            if args.broker_url:
                host, port = _loopback_broker(args.broker_url)
                broker_url = f"mqtt://{host}:{port}"
            else:
                conf = [] if args.broker_nagle else ["set_tcp_nodelay true"]
                mosquitto = common.Mosquitto([*conf, *args.mosquitto_conf]).start()
                host, port, broker_url = HOST, mosquitto.port, mosquitto.url
                cpu.add("mosquitto", mosquitto.pid)
            subscriber = Child("subscriber", subscriber_main, host, port, TOPIC_FILTER,
                               args.sub_qos)
            if not subscriber.reply(15.0)["subscribed"]:
                raise RuntimeError("the subscriber got no SUBACK")
            cpu.add("subscriber", subscriber.pid)
        gw_env = {
            "EGW_MQTTSN__RATE_LIMIT": "1000000",
            "EGW_MQTTSN__RATE_BURST": "1000000",
            "EGW_MQTTSN__MAX_CLIENTS": str(max(20000, args.clients + 100)),
            # Gateway -> client window; these clients only publish, so it is not exercised.
            "EGW_MQTTSN__MAX_INFLIGHT": "16",
            # The QoS 1 phase has up to one publish per client waiting for the broker.
            "EGW_BROKER__MAX_PENDING": str(max(10000, 2 * args.clients)),
        }
        gateway = common.GatewayProcess(common.free_port(socket.SOCK_DGRAM), broker_url, gw_env)
        gateway.start()
        assert gateway.pid is not None
        result["params"]["gateway_env"] = gateway.gateway_env
        cpu.add("gateway", gateway.pid)

        for k in range(args.generators):
            cfg = {
                "gen_id": k, "n_gen": args.generators,
                "indices": list(range(k, args.clients, args.generators)),
                "gw_port": gateway.port, "payload_size": args.payload_size,
                "retry_timeout": args.retry_timeout, "max_retries": args.max_retries,
            }
            generators.append(Child(f"generator-{k}", generator_main, cfg))
        opened = [gen.reply(60.0) for gen in generators]
        for k, gen in enumerate(generators):
            cpu.add(f"generator-{k}", gen.pid)
        result["generator_sockets"] = opened

        # -- RSS before clients, connect storm, RSS after ----------------------------------
        time.sleep(0.3)
        rss_before = common.rss_kb(gateway.pid)
        cpu.mark("startup")
        start_at = time.monotonic() + 0.1
        storms = [gen.call(("storm", {"start_at": start_at, "cap_s": storm_cap}), storm_cap + 30)
                  for gen in generators]
        cpu.mark("storm")
        registered = _sum(storms, "registered")
        storm_s = max(s["t_last"] for s in storms) - min(s["t_first"] for s in storms)
        result["connect_storm_s"] = round(storm_s, 3)
        result["storm"] = {
            "registered": registered,
            "failed": _sum(storms, "failed"),
            "connects_sent_s": round(
                max(s["t_all_connects_sent"] for s in storms)
                - min(s["t_first"] for s in storms), 3),
            "clients_per_s": _rate(registered, 0.0, storm_s),
            "events": _merge_counts(storms, "counts", "unexpected"),
            "generator_cpu_s": round(sum(s["cpu_s"] for s in storms), 3),
        }
        if registered < args.clients:
            warnings.append(f"only {registered}/{args.clients} clients connected and registered")
        time.sleep(1.0)
        rss_after = common.rss_kb(gateway.pid)
        cpu.mark("idle")
        result["rss_before_kb"] = rss_before
        result["rss_after_kb"] = rss_after
        result["rss_per_client_kb"] = (
            round((rss_after - rss_before) / registered, 3)
            if rss_before is not None and rss_after is not None and registered else None
        )
        if registered == 0:
            raise RuntimeError("no client registered; nothing to publish")

        if not args.no_broker:
            probe = generators[0].call(("probe", {"timeout": 10.0}), 20.0)
            result["broker_probe"] = probe
            if not probe["ok"]:
                raise RuntimeError(f"the gateway's broker link did not ack a probe: {probe}")

        for name in phases:
            result[name] = _run_phase(
                name, args, generators, subscriber, cpu, gateway, warnings, registered
            )
        if subscriber is not None:
            final = subscriber.call("report", 30.0)
            result["subscriber"] = {"cpu_s": round(final["cpu_s"], 3), "other": final["other"],
                                    "probe_received": final["probe"]["received"]}
        result["gateway_alive_at_end"] = gateway.proc is not None and gateway.proc.poll() is None
    finally:
        signal.alarm(0)
        result["gateway_cpu_s"] = common.cpu_seconds(gateway.pid) if gateway else None
        result["cpu_by_phase"] = cpu.phases
        for gen in generators:
            gen.stop(("stop", {}))
        if subscriber is not None:
            subscriber.stop("stop")
        if gateway is not None:
            gateway.shutdown(result)
        if mosquitto is not None:
            result["mosquitto_cpu_s"] = common.cpu_seconds(mosquitto.pid)
            mosquitto.stop()
        result["run_s"] = round(time.monotonic() - t_run, 2)


# ================================================================================== reporting


def print_report(result: dict[str, Any]) -> None:
    m, p = result["machine"], result["params"]
    print(f"\nMQTT-SN ingest: {p['clients']} clients, offered {p['rate']:.0f} msg/s for"
          f" {p['duration']} s, payload {p['payload_size']} B, {p['generators']} generator(s),"
          f" broker {p['broker']}, sub QoS {p['sub_qos']}")
    print(f"machine: {m['cpus']} cpus, python {m['python']}, {m['platform']},"
          f" load at start {m['loadavg_at_start']}")
    rows: list[tuple[str, str]] = [
        ("connect storm", _fmt(result.get("connect_storm_s"), "s")
         + f"  ({_fmt(result.get('storm', {}).get('clients_per_s'), 'clients/s')})"),
        ("  registered / failed", f"{_fmt(result.get('storm', {}).get('registered'))} / "
                                  f"{_fmt(result.get('storm', {}).get('failed'))}"),
        ("  storm events", json.dumps(result.get("storm", {}).get("events", {}))),
        ("gateway RSS before", _fmt(result.get("rss_before_kb"), "KiB")),
        ("gateway RSS after storm", _fmt(result.get("rss_after_kb"), "KiB")),
        ("RSS per idle client", _fmt(result.get("rss_per_client_kb"), "KiB")),
    ]
    for name in ("qos0", "qos1"):
        r = result.get(name)
        if not r:
            continue
        lat = r.get("latency_ms") or {}
        rows += [
            (f"{name.upper()} sent", f"{_fmt(r['sent'])}  (achieved"
                                     f" {_fmt(r['achieved_send_rate'], 'msg/s')})"),
            (f"{name.upper()} delivered / lost / dup",
             f"{_fmt(r.get('delivered'))} / {_fmt(r.get('lost'))} / {_fmt(r.get('duplicates'))}"),
            (f"{name.upper()} throughput (delivered)", _fmt(r.get("throughput"), "msg/s")),
            (f"{name.upper()} pub->sub latency p50/p99",
             f"{_fmt(lat.get('p50'))} / {_fmt(lat.get('p99'))} ms (max {_fmt(lat.get('max'))})"),
        ]
        if name == "qos1":
            pl = r.get("puback_latency_ms") or {}
            rows += [
                ("QOS1 acked / rejected", f"{_fmt(r.get('acked'))} / {_fmt(r.get('rejected'))}"),
                ("QOS1 acked rate", _fmt(r.get("acked_rate"), "msg/s")),
                ("QOS1 pub->PUBACK p50/p99",
                 f"{_fmt(pl.get('p50'))} / {_fmt(pl.get('p99'))} ms (max {_fmt(pl.get('max'))})"),
                ("QOS1 ceiling N/mean PUBACK lat",
                 _fmt(r.get("closed_loop_limit_rate"), "msg/s")),
            ]
        gen = r.get("generator", {})
        rows.append((f"{name.upper()} generator CPU", f"{_fmt(gen.get('cpu_s'), 's')} (util"
                     f" {_fmt(gen.get('cpu_util'))}), events {json.dumps(gen.get('events'))}"))
        if "udp_delta" in r:
            rows.append((f"{name.upper()} UDP counters delta", json.dumps(r["udp_delta"])))
    rows.append(("gateway CPU total", _fmt(result.get("gateway_cpu_s"), "s")))
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")

    phases = result.get("cpu_by_phase", {})
    machine_keys = ("wall_s", "host_busy", "cpu_pressure")
    names = sorted({k for row in phases.values() for k in row if k not in machine_keys})
    if phases and names:
        print("\n  CPU per phase: util (1.00 = one core busy) / run-queue wait as a share of the"
              " phase;\n  host = busy share of all CPUs of the machine, psi = share of time some"
              " task waited for a CPU")
        print("  " + f"{'phase':<14}{'wall s':>7}" + "".join(f"{n:>14}" for n in names)
              + f"{'host':>7}{'psi':>6}")
        for phase, row in phases.items():
            if row["wall_s"] < 0.05:
                continue
            cells = "".join(f"{_util(row.get(n), row['wall_s']):>14}" for n in names)
            print(f"  {phase:<14}{row['wall_s']:>7.2f}{cells}"
                  f"{_fmt(row.get('host_busy')):>7}{_fmt(row.get('cpu_pressure')):>6}")
    for warning in result.get("warnings", []):
        print(f"\nWARNING: {warning}")
    print(f"\nrun took {result.get('run_s')} s")


def _util(cell: dict[str, Any] | None, wall: float) -> str:
    if not cell or cell.get("util") is None:
        return "-"
    wait = cell.get("runq_wait_s")
    if wait is None or wall <= 0:
        return f"{cell['util']:.2f}"
    return f"{cell['util']:.2f}/{wait / wall:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {}
    error: str | None = None
    try:
        run(args, result)
    except (HardCap, RuntimeError, TimeoutError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"benchmark failed: {error}", file=sys.stderr)
    if result.get("storm"):
        print_report(result)
    if args.json is not None:
        if error:
            result["error"] = error
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
