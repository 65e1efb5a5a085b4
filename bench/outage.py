"""Broker outage benchmark: the spool in front of the broker link under a sustained QoS 1 load.

The gateway (``python -m gateway run``), a private mosquitto, a TCP proxy between the gateway and
the broker, an MQTT-SN load generator and a counting subscriber (paho-mqtt, MQTT v5) are separate
processes, all on loopback.

    python3 bench/outage.py                              # 60 s outage at 1000 msg/s
    python3 bench/outage.py --outage 20 --rate 1000 --json out.json

Phases, with the load running throughout (N clients, QoS 1, one message in flight per client,
topics ``bench/c<i>``):

* warm-up (``--warmup`` s): normal operation, broker reachable;
* outage (``--outage`` s): the proxy closes its listening socket and aborts the relayed
  connections, so the gateway can neither keep nor re-establish its broker connection; the
  gateway spools every broker-bound message and PUBACKs a QoS 1 one after the commit;
* recovery: the proxy listens again; the load stays on until every message acknowledged up to
  the restore has reached the subscriber (or a cap), then the load stops and the remaining
  acknowledged messages are awaited for as long as the subscriber keeps receiving (it is the
  slowest process and may lag behind the broker by tens of thousands of messages).

The subscriber records, per message, the MQTT v5 user properties ``egw-gateway`` / ``egw-seq`` /
``egw-replay`` and the generator's own sequence number (payload), so it can count unique
deliveries, duplicates and exactly which acknowledged messages are missing.

The whole run is bounded by 2 x ``--outage`` + 90 s (SIGALRM), room for a reconnect backoff
of up to 30 s and a replay slower than the outage; every process is stopped by its pid.
Acknowledged messages still in the spool when time is up are reported as such, not as loss.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time
import traceback
from collections import Counter, deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # also puts the repository root on sys.path
import mqttsn_ingest as ingest

from gateway.mqttsn.codec import encode
from gateway.mqttsn.constants import QoS, ReturnCode
from gateway.mqttsn.packets import Packet, PubAck, Publish

_fmt = common.fmt

HOST = common.HOST
TOPIC_FILTER = "edge/site1/bench/#"
STAMP = struct.Struct("!dI")  # send time (time.time()), generator sequence number
SEQ_MASK = (1 << 31) - 1  # load seqs; the ingest probe's seqs have the top bit set
PROBE_MIN = 1 << 31
EXTRA_BUDGET = 90.0
DRAIN_STALL = 5.0  # the final drain ends when the subscriber got nothing new for this long
ACK_WAIT = 5.0
SPOOL_FILE = "spool.sqlite3"


class HardCap(Exception):
    """The run exceeded its hard time budget."""


def _raise_hard_cap(signum: int, _frame: Any) -> None:
    raise HardCap(f"hard time cap reached (signal {signum})")


# ====================================================================================== proxy
class Proxy:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target that can cut and restore the link."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.accepts: list[float] = []  # time.monotonic() of every accepted connection
        self.bytes_up = 0
        self.bytes_down = 0

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._accept, HOST, self.port)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepts.append(time.monotonic())
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        upstream: asyncio.StreamWriter | None = None
        self.writers.add(writer)
        try:
            up_reader, upstream = await asyncio.open_connection(HOST, self.target)
            upstream.transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
            self.writers.add(upstream)
            await asyncio.gather(
                self._relay(reader, upstream, up=True), self._relay(up_reader, writer, up=False)
            )
        except OSError:
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self.writers.discard(w)
                    w.transport.abort()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()


def proxy_main(conn: Any, port: int, target: int) -> None:
    """The proxy process: asyncio relay; commands on the pipe (cut, restore, status, stop)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def serve() -> None:
        proxy = Proxy(port, target)
        await proxy.listen()
        conn.send(("ok", {"port": port}))
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[Any] = asyncio.Queue()
        loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
        while True:
            cmd = await commands.get()
            if cmd == "cut":
                t = time.monotonic()
                await proxy.cut()
                conn.send(("ok", {"t": t}))
            elif cmd == "restore":
                t = time.monotonic()
                await proxy.listen()
                conn.send(("ok", {"t": t}))
            elif cmd == "status":
                conn.send(("ok", {"accepts": list(proxy.accepts), "bytes_up": proxy.bytes_up,
                                  "bytes_down": proxy.bytes_down,
                                  "open": len(proxy.writers)}))
            else:
                await proxy.cut()
                return

    try:
        asyncio.run(serve())
    except (EOFError, KeyboardInterrupt):
        pass
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))


# ============================================================================== load generator
class OutageGenerator(ingest.Generator):
    """The ingest benchmark's client sockets / connect storm, plus an open-ended QoS 1 load."""

    def load(self, rate: float, cap_s: float, ack_wait: float) -> dict[str, Any]:
        """QoS 1 at `rate` (window 1 per client) until the parent sends "stop" (or `cap_s`).

        While running, answers "status" on the pipe with the acked count and, for "acked_seqs",
        the payload seqs of every message acknowledged so far.
        """
        conn = self.conn
        n = len(self.socks)
        active = [i for i, t in enumerate(self.topic_ids) if t]
        ready: deque[int] = deque(active)
        first_tx = [0.0] * n
        last_tx = [0.0] * n
        retries = [0] * n
        msg_ids = [ingest.REGISTER_MSG_ID + 10] * n
        in_flight: list[Publish | None] = [None] * n
        in_flight_seq = [0] * n
        ack_tx = array.array("d")  # first transmission time of each acked message
        ack_lat = array.array("d")  # its PUBACK latency (s)
        acked_seqs = array.array("I")
        counts: Counter[str] = Counter()
        state = {"acked": 0, "rejected": 0, "inflight": 0, "sending": True}
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
                if packet.return_code is accepted:
                    state["acked"] += 1
                    ack_tx.append(first_tx[idx])
                    ack_lat.append(now - first_tx[idx])
                    acked_seqs.append(in_flight_seq[idx])
                else:
                    state["rejected"] += 1
                    counts[f"puback_{packet.return_code.name.lower()}"] += 1
                first_tx[idx] = 0.0
                in_flight[idx] = None
                state["inflight"] -= 1
                if state["sending"]:
                    ready.append(idx)
            else:
                counts[f"reply_{type(packet).__name__}"] += 1

        def retransmit_scan(now: float) -> None:
            for idx in range(n):
                if first_tx[idx] and now - last_tx[idx] >= self.retry_timeout:
                    packet = in_flight[idx]
                    if retries[idx] >= self.max_retries or packet is None:
                        first_tx[idx] = 0.0
                        in_flight[idx] = None
                        state["inflight"] -= 1
                        counts["client_gave_up"] += 1
                        continue
                    retries[idx] += 1
                    counts["retransmit"] += 1
                    last_tx[idx] = now
                    dup = Publish(packet.topic_id, packet.msg_id, packet.data, qos1, dup=True)
                    with contextlib.suppress(OSError):
                        socks[idx].send(encode(dup))

        def commands() -> bool:
            """Answer the parent's requests; False when told to stop sending."""
            while conn.poll(0):
                cmd = conn.recv()
                if cmd == "status":
                    conn.send(("ok", {"sent": sent, "acked": state["acked"],
                                      "inflight": state["inflight"]}))
                elif cmd == "acked_seqs":
                    conn.send(("ok", {"t": monotonic(), "seqs": acked_seqs.tobytes()}))
                else:
                    return False
            return True

        sent = 0
        errors = 0
        counter = 0
        t0 = monotonic()
        end = t0 + cap_s
        next_scan = t0 + ingest.SCAN_INTERVAL
        next_cmd = t0
        while True:
            now = monotonic()
            if now >= end:
                counts["stopped_by_cap"] += 1
                break
            if now >= next_cmd:
                next_cmd = now + 0.02
                if not commands():
                    break
            if now >= next_scan:
                retransmit_scan(now)
                next_scan = now + ingest.SCAN_INTERVAL
            due = int((now - t0) * rate) + 1 - sent
            if due <= 0 or not ready:
                wait = (sent + 1) / rate - (now - t0) if due <= 0 else 0.005
                self._poll(min(max(wait, 0.0), 0.005), on_packet)
                if due > 0:
                    counts["window_limited_polls"] += 1
                continue
            for _ in range(min(due, ingest.BATCH, len(ready))):
                idx = ready.popleft()
                msg_id = msg_ids[idx] + 1
                if msg_id > 0xFFFF:
                    msg_id = ingest.REGISTER_MSG_ID + 1
                msg_ids[idx] = msg_id
                seq = counter & SEQ_MASK
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
                in_flight[idx] = packet
                in_flight_seq[idx] = seq
                state["inflight"] += 1
                sent += 1
            self._poll(0, on_packet)
        t_last_send = monotonic()
        state["sending"] = False
        give_up = t_last_send + ack_wait
        while state["inflight"] > 0 and monotonic() < give_up:
            self._poll(0.01, on_packet)
            now = monotonic()
            if now >= next_scan:
                retransmit_scan(now)
                next_scan = now + ingest.SCAN_INTERVAL
        counts["unacked_at_end"] = state["inflight"]
        return {
            "sent": sent,
            "send_errors": errors,
            "acked": state["acked"],
            "rejected": state["rejected"],
            "t_first": t0,
            "t_last_send": t_last_send,
            "counts": dict(counts),
            "ack_tx": ack_tx.tobytes(),
            "ack_lat": ack_lat.tobytes(),
            "acked_seqs": acked_seqs.tobytes(),
        }


def generator_main(conn: Any, cfg: dict[str, Any]) -> None:
    ingest.generator_main(conn, cfg, OutageGenerator)


# ================================================================================== subscriber
def subscriber_main(conn: Any, port: int) -> None:
    """paho-mqtt v5 subscriber: records (egw-gateway, egw-seq), egw-replay and the payload seq."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()
    keys: set[tuple[str, int]] = set()
    first_rx: dict[int, float] = {}  # payload seq -> first arrival (time.monotonic())
    stats: Counter[str] = Counter()
    last_replay_rx = [0.0]
    first_replay_rx = [0.0]
    subscribed = threading.Event()
    unpack = STAMP.unpack_from
    monotonic = time.monotonic

    def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
        now = monotonic()
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        payload = msg.payload
        with lock:
            stats["received"] += 1
            if len(payload) < STAMP.size:
                stats["short_payload"] += 1
                return
            seq = unpack(payload)[1]
            if seq >= PROBE_MIN:
                stats["probe"] += 1
                return
            gw_seq = props.get("egw-seq")
            if gw_seq is None:
                stats["no_egw_seq"] += 1
            else:
                key = (props.get("egw-gateway", ""), int(gw_seq))
                if key in keys:
                    stats["duplicates"] += 1
                else:
                    keys.add(key)
            if props.get("egw-replay") == "1":
                stats["replayed"] += 1
                last_replay_rx[0] = now
                if not first_replay_rx[0]:
                    first_replay_rx[0] = now
            if seq in first_rx:
                stats["payload_duplicates"] += 1
            else:
                first_rx[seq] = now

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-outage-sub-{os.getpid()}",
        protocol=paho.MQTTv5,
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()

    def on_disconnect(*_args: Any) -> None:
        with lock:
            stats["subscriber_disconnects"] += 1

    client.on_disconnect = on_disconnect
    try:
        client.connect(HOST, port, keepalive=60, clean_start=True)
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        client.subscribe(TOPIC_FILTER, 1)
        client.loop_start()
        conn.send(("ok", {"subscribed": subscribed.wait(10)}))
        while True:
            cmd, arg = conn.recv()
            if cmd == "status":
                with lock:
                    conn.send(("ok", {**stats, "unique_keys": len(keys),
                                      "unique_payloads": len(first_rx)}))
            elif cmd == "missing":
                # arg: bytes of acked payload seqs; which of them have not arrived yet, and the
                # latest first-arrival among those that did.
                wanted = array.array("I")
                wanted.frombytes(arg)
                with lock:
                    missing = [s for s in wanted if s not in first_rx]
                    arrived = [first_rx[s] for s in wanted if s in first_rx]
                conn.send(("ok", {"missing": len(missing), "sample": missing[:10],
                                  "seqs": array.array("I", missing).tobytes(),
                                  "last_rx": max(arrived, default=None)}))
            elif cmd == "report":
                with lock:
                    conn.send(("ok", {
                        **stats, "unique_keys": len(keys), "unique_payloads": len(first_rx),
                        "first_replay_rx": first_replay_rx[0] or None,
                        "last_replay_rx": last_replay_rx[0] or None,
                    }))
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


# ================================================================================ orchestration
Child = ingest.Child


def spool_bytes(data_dir: Path) -> dict[str, int]:
    out = {}
    for suffix in ("", "-wal", "-shm"):
        path = data_dir / f"{SPOOL_FILE}{suffix}"
        with contextlib.suppress(OSError):
            out[path.name] = path.stat().st_size
    out["total_db_wal"] = out.get(SPOOL_FILE, 0) + out.get(f"{SPOOL_FILE}-wal", 0)
    return out


def spool_rows(data_dir: Path) -> dict[str, int] | None:
    """Rows and accounted bytes per class, read through a second (read-only) connection.

    WAL lets this reader run beside the gateway's writer; None if the file cannot be read.
    """
    uri = f"file:{data_dir / SPOOL_FILE}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            rows = db.execute("SELECT cls, COUNT(*), SUM(bytes) FROM spool GROUP BY cls").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    out = {"rows": sum(int(n) for _, n, _ in rows),
           "accounted_bytes": sum(int(b or 0) for _, _, b in rows)}
    out.update({f"rows_{cls}": int(n) for cls, n, _ in rows})
    return out


def spooled_seqs(data_dir: Path) -> set[int] | None:
    """The generator seqs of the messages still in the spool (read-only connection)."""
    uri = f"file:{data_dir / SPOOL_FILE}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            payloads = [bytes(p) for (p,) in db.execute("SELECT payload FROM spool")]
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return {STAMP.unpack_from(p)[1] for p in payloads if len(p) >= STAMP.size}


def _latency(values: list[float]) -> dict[str, Any]:
    values.sort()

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000.0, 3)
    return {"n": len(values), "p50": ms(common.percentile(values, 50, is_sorted=True)),
            "p99": ms(common.percentile(values, 99, is_sorted=True)),
            "max": ms(values[-1] if values else None)}


class RssSampler(threading.Thread):
    """Samples the gateway's VmRSS every 0.25 s, tagged with the current phase."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.phase = "setup"
        self.samples: dict[str, list[int]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            rss = common.rss_kb(self.pid)
            if rss is not None:
                self.samples.setdefault(self.phase, []).append(rss)

    def summary(self) -> dict[str, Any]:
        return {phase: {"first": v[0], "last": v[-1], "max": max(v)}
                for phase, v in self.samples.items() if v}


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    budget = 2 * args.outage + EXTRA_BUDGET
    signal.signal(signal.SIGALRM, _raise_hard_cap)
    signal.signal(signal.SIGTERM, _raise_hard_cap)
    signal.alarm(math.ceil(budget))
    t_run = time.monotonic()
    hard_deadline = t_run + budget
    result.update({
        "machine": common.machine_info(),
        "params": {"clients": args.clients, "rate": args.rate, "warmup": args.warmup,
                   "outage": args.outage, "replay_rate": args.replay_rate,
                   "payload_size": args.payload_size, "time_budget_s": math.ceil(budget)},
        "warnings": [],
    })
    warnings: list[str] = result["warnings"]
    mosquitto: common.Mosquitto | None = None
    gateway: common.GatewayProcess | None = None
    proxy: Child | None = None
    subscriber: Child | None = None
    generator: Child | None = None
    sampler: RssSampler | None = None
    load_running = False
    try:
        mosquitto = common.Mosquitto(["set_tcp_nodelay true"]).start()
        proxy_port = common.free_port()
        proxy = Child("proxy", proxy_main, proxy_port, mosquitto.port)
        proxy.reply(15.0)
        subscriber = Child("subscriber", subscriber_main, mosquitto.port)
        if not subscriber.reply(15.0)["subscribed"]:
            raise RuntimeError("the subscriber got no SUBACK")
        gw_env = {
            "EGW_COAP__HOST": HOST,
            "EGW_COAP__PORT": str(common.free_port(socket.SOCK_DGRAM)),
            "EGW_MQTTSN__RATE_LIMIT": "1000000",
            "EGW_MQTTSN__RATE_BURST": "1000000",
            "EGW_MQTTSN__MAX_CLIENTS": str(max(20000, args.clients + 100)),
            "EGW_BROKER__MAX_PENDING": str(max(10000, 2 * args.clients)),
            "EGW_SPOOL__REPLAY_RATE": str(args.replay_rate),
        }
        gateway = common.GatewayProcess(
            common.free_port(socket.SOCK_DGRAM), f"mqtt://{HOST}:{proxy_port}", gw_env
        )
        gateway.start()
        assert gateway.pid is not None
        result["params"]["gateway_env"] = gateway.gateway_env
        data_dir = Path(gateway.gateway_env["EGW_DATA_DIR"])
        sampler = RssSampler(gateway.pid)
        sampler.start()

        generator = Child("generator", generator_main, {
            "gen_id": 0, "n_gen": 1, "indices": list(range(args.clients)),
            "gw_port": gateway.port, "payload_size": args.payload_size,
            "retry_timeout": args.retry_timeout, "max_retries": args.max_retries,
        })
        generator.reply(30.0)
        storm = generator.call(("storm", {"start_at": time.monotonic(), "cap_s": 20.0}), 40.0)
        result["storm"] = {k: storm[k] for k in ("registered", "failed", "counts")}
        if storm["registered"] == 0:
            raise RuntimeError("no client registered")
        if storm["registered"] < args.clients:
            warnings.append(f"only {storm['registered']}/{args.clients} clients registered")
        probe = generator.call(("probe", {"timeout": 10.0}), 20.0)
        if not probe["ok"]:
            raise RuntimeError(f"the gateway's broker link did not ack a probe: {probe}")
        # The probe's payload seq has the top bit set (phase 2 of the ingest bench): ignored.
        time.sleep(0.5)

        # -- warm-up ---------------------------------------------------------------------
        sampler.phase = "warmup"
        rss_before = common.rss_kb(gateway.pid)
        load_cap = budget  # the generator stops on its own at the latest here
        generator.send(("load", {"rate": args.rate, "cap_s": load_cap, "ack_wait": ACK_WAIT}))
        load_running = True
        t_load = time.monotonic()
        time.sleep(args.warmup)
        rss_normal = common.rss_kb(gateway.pid)

        # -- outage ----------------------------------------------------------------------
        t_cut = proxy.call("cut", 10.0)["t"]
        sampler.phase = "outage"
        spool_mid = None
        while time.monotonic() < t_cut + args.outage:
            time.sleep(min(0.5, t_cut + args.outage - time.monotonic()))
            if spool_mid is None and time.monotonic() >= t_cut + args.outage / 2:
                spool_mid = spool_bytes(data_dir)
        spool_end = spool_bytes(data_dir)
        spool_end_rows = spool_rows(data_dir)
        rss_outage_end = common.rss_kb(gateway.pid)
        status_end_outage = generator.call("status", 10.0)

        # -- recovery --------------------------------------------------------------------
        t_restore = proxy.call("restore", 10.0)["t"]
        sampler.phase = "recovery"
        backlog = generator.call("acked_seqs", 10.0)
        backlog_seqs = backlog["seqs"]
        recovery_cap = hard_deadline - 25.0  # leave room for stopping and the final drain
        replay_done_at = None
        missing_now = None
        spool_samples: list[tuple[float, int]] = []  # (time.monotonic(), rows) while recovering
        while time.monotonic() < recovery_cap:
            time.sleep(0.5)
            rows_now = spool_rows(data_dir)
            if rows_now is not None:
                spool_samples.append((time.monotonic(), rows_now["rows"]))
            if replay_done_at is None:
                check = subscriber.call(("missing", backlog_seqs), 20.0)
                missing_now = check["missing"]
                if missing_now == 0:
                    replay_done_at = check["last_rx"]
            # Rows are deleted a batch after their PUBACK: wait for the empty spool as well.
            if replay_done_at is not None and spool_samples and spool_samples[-1][1] == 0:
                break
        if replay_done_at is None:
            warnings.append(f"recovery cap: {missing_now} messages acked before the restore"
                            " still missing")
        t_recovered = time.monotonic()
        accepts = [t for t in proxy.call("status", 10.0)["accepts"] if t >= t_restore]
        t_reconnect = accepts[0] if accepts else None
        # The gateway's own replay: from the reconnect until its spool was empty (every row
        # acknowledged by the broker), whatever the subscriber's pace.
        t_spool_empty = next((t for t, n in spool_samples
                              if t_reconnect is not None and t > t_reconnect and n == 0), None)
        time.sleep(1.0)  # a little steady state after the replay
        rss_after = common.rss_kb(gateway.pid)
        spool_after = spool_bytes(data_dir)
        spool_after_rows = spool_rows(data_dir)

        # -- stop the load, collect the PUBACKs still due, then drain --------------------
        generator.send("stop")  # read by the load loop's command check
        load = generator.reply(ACK_WAIT + 20.0)
        load_running = False
        t_load_end = time.monotonic()
        sampler.phase = "drain"
        acked_all = load["acked_seqs"]
        final_missing = None
        drain_cap = hard_deadline - 5.0
        received_at_drain = received = subscriber.call(("status", None), 20.0).get("received", 0)
        progress_at = time.monotonic()
        # The subscriber (one Python process, QoS 1) is the slowest part: it may still be
        # working through what the broker queued for it. Wait while it makes progress.
        while True:
            final_missing = subscriber.call(("missing", acked_all), 20.0)
            now = time.monotonic()
            if final_missing["missing"] == 0 or now >= drain_cap or now - progress_at > DRAIN_STALL:
                break
            time.sleep(0.5)
            received_now = subscriber.call(("status", None), 20.0).get("received", 0)
            if received_now > received:
                received, progress_at = received_now, time.monotonic()
        sub = subscriber.call(("report", None), 20.0)
        result["spool_rows_after_drain"] = spool_rows(data_dir)
        result["received_during_drain"] = sub.get("received", 0) - received_at_drain
        missing_seqs = array.array("I")
        missing_seqs.frombytes(final_missing["seqs"])
        spooled = spooled_seqs(data_dir)
        still_spooled = (len(set(missing_seqs) & spooled) if spooled is not None
                         else None)

        # -- figures ---------------------------------------------------------------------
        ack_tx = array.array("d")
        ack_tx.frombytes(load["ack_tx"])
        ack_lat = array.array("d")
        ack_lat.frombytes(load["ack_lat"])
        by_phase: dict[str, list[float]] = {"normal": [], "outage": [], "recovery": []}
        for tx, lat in zip(ack_tx, ack_lat, strict=True):
            phase = "normal" if tx < t_cut else "outage" if tx < t_restore else "recovery"
            by_phase[phase].append(lat)
        acked = load["acked"]
        delivered = sub["unique_keys"]
        backlog_n = len(backlog_seqs) // 4
        result.update({
            "sent": load["sent"],
            "acked": acked,
            "rejected": load["rejected"],
            "generator_counts": load["counts"],
            "generator_unexpected": load.get("unexpected"),
            "delivered_unique": delivered,
            "received": sub.get("received", 0) - sub.get("probe", 0),
            "duplicates": sub.get("duplicates", 0),
            "payload_duplicates": sub.get("payload_duplicates", 0),
            "replayed_received": sub.get("replayed", 0),
            "no_egw_seq": sub.get("no_egw_seq", 0),
            "subscriber_disconnects": sub.get("subscriber_disconnects", 0),
            "loss": acked - delivered,
            "acked_not_delivered": final_missing["missing"],
            "acked_still_spooled": still_spooled,
            "acked_lost": final_missing["missing"] - (still_spooled or 0),
            "acked_not_delivered_sample": final_missing["sample"],
            "acked_before_restore": backlog_n,
            "acked_during_outage": len(by_phase["outage"]),
            "sent_at_outage_end": status_end_outage["sent"],
            "spool_mid_outage": spool_mid,
            "spool_end_of_outage": spool_end,
            "spool_rows_end_of_outage": spool_end_rows,
            "spool_after_replay": spool_after,
            "spool_rows_after_replay": spool_after_rows,
            "reconnect_after_restore_s": (round(t_reconnect - t_restore, 3)
                                          if t_reconnect else None),
            "replay_duration_s": (round(replay_done_at - t_reconnect, 3)
                                  if replay_done_at and t_reconnect else None),
            "spool_drained_after_reconnect_s": (round(t_spool_empty - t_reconnect, 1)
                                                if t_spool_empty and t_reconnect else None),
            "replay_span_at_subscriber_s": (
                round(sub["last_replay_rx"] - sub["first_replay_rx"], 3)
                if sub.get("last_replay_rx") and sub.get("first_replay_rx") else None),
            "recovery_wait_s": round(t_recovered - t_restore, 3),
            "load_s": round(t_load_end - t_load, 2),
            "rss_kb": {"before": rss_before, "normal": rss_normal,
                       "outage_end": rss_outage_end, "after": rss_after,
                       "by_phase": sampler.summary()},
            "puback_latency_ms": {k: _latency(v) for k, v in by_phase.items()},
        })
        if t_reconnect and sub.get("last_replay_rx"):
            # Everything spooled (up to the reconnect, not just up to the restore) / the time
            # from the reconnect to the last replayed message at the subscriber.
            span = sub["last_replay_rx"] - t_reconnect
            result["reconnect_to_last_replayed_s"] = round(span, 3)
            if span > 0:
                result["replay_rate_achieved"] = round(result["replayed_received"] / span, 1)
        if result["acked_lost"] != 0:
            warnings.append(f"LOSS: acked {acked}, delivered unique {delivered},"
                            f" acked payloads neither delivered nor spooled"
                            f" {result['acked_lost']}")
        elif final_missing["missing"] != 0:
            warnings.append(f"replay unfinished: {still_spooled} acknowledged messages still in"
                            " the spool when time was up (not lost)")
        result["gateway_alive_at_end"] = gateway.proc is not None and gateway.proc.poll() is None
    finally:
        signal.alarm(0)
        if sampler is not None:
            sampler.halt.set()
        if generator is not None:
            if load_running:
                with contextlib.suppress(OSError, ValueError):
                    generator.send("stop")
            generator.stop(("stop", {}))
        if subscriber is not None:
            subscriber.stop(("stop", None))
        if gateway is not None:
            result["gateway_cpu_s"] = common.cpu_seconds(gateway.pid)
            if result.get("warnings"):  # the gateway's own warnings say what happened
                result["gateway_log_tail"] = gateway.log_tail(40)
                if mosquitto is not None:
                    log_path = mosquitto.tmp / "mosquitto.log"
                    with contextlib.suppress(OSError):
                        result["mosquitto_log_tail"] = log_path.read_text().splitlines()[-20:]
            gateway.shutdown(result)
        if proxy is not None:
            proxy.stop("stop")
        if mosquitto is not None:
            mosquitto.stop()
        result["run_s"] = round(time.monotonic() - t_run, 2)


# ================================================================================== reporting


def print_report(r: dict[str, Any]) -> None:
    p, m = r["params"], r["machine"]
    print(f"\nBroker outage: {p['clients']} MQTT-SN clients, QoS 1 window 1, {p['rate']:.0f} msg/s,"
          f" warm-up {p['warmup']} s, outage {p['outage']} s, replay rate"
          f" {p['replay_rate']:.0f} msg/s, payload {p['payload_size']} B")
    print(f"machine: {m['cpus']} cpus, python {m['python']}, load at start"
          f" {m['loadavg_at_start']}")
    lat = r.get("puback_latency_ms", {})
    rss = r.get("rss_kb", {})
    spool = r.get("spool_end_of_outage") or {}
    spool_rows_end = r.get("spool_rows_end_of_outage") or {}
    spool_rows_after = r.get("spool_rows_after_replay") or {}
    n_rows = spool_rows_end.get("rows")
    per_row = (f"{spool.get(SPOOL_FILE, 0) / n_rows:.0f} B of database file,"
               f" {spool_rows_end.get('accounted_bytes', 0) / n_rows:.0f} B accounted"
               if n_rows else "-")

    def latrow(name: str) -> str:
        x = lat.get(name, {})
        return (f"{_fmt(x.get('p50'))} / {_fmt(x.get('p99'))} ms (max {_fmt(x.get('max'))},"
                f" n={_fmt(x.get('n'))})")

    rows = [
        ("sent", _fmt(r.get("sent"))),
        ("acked (PUBACK accepted)", f"{_fmt(r.get('acked'))}  (rejected"
                                    f" {_fmt(r.get('rejected'))})"),
        ("delivered unique (gw, seq)", _fmt(r.get("delivered_unique"))),
        ("duplicates (same seq again)", _fmt(r.get("duplicates"))),
        ("payload duplicates", _fmt(r.get("payload_duplicates"))),
        ("loss = acked - delivered", _fmt(r.get("loss"))),
        ("acked payloads not delivered", _fmt(r.get("acked_not_delivered"))
         + f"  (still spooled {_fmt(r.get('acked_still_spooled'))},"
           f" lost {_fmt(r.get('acked_lost'))})"),
        ("acked during outage", _fmt(r.get("acked_during_outage"))),
        ("replayed (egw-replay=1) rx", _fmt(r.get("replayed_received"))),
        ("spool at end of outage", f"{_fmt(spool.get('total_db_wal'))} B (db"
                                   f" {_fmt(spool.get(SPOOL_FILE))} + wal"
                                   f" {_fmt(spool.get(SPOOL_FILE + '-wal'))})"),
        ("spool rows at end of outage", f"{_fmt(n_rows)}  ({per_row} per row)"),
        ("spool rows after replay", _fmt(spool_rows_after.get("rows"))),
        ("reconnect after restore", _fmt(r.get("reconnect_after_restore_s"), "s")),
        ("spool empty after reconnect", _fmt(r.get("spool_drained_after_reconnect_s"), "s")
         + "  (the gateway's replay, 0.5 s resolution)"),
        ("replay duration (backlog)", _fmt(r.get("replay_duration_s"), "s")
         + "  (until the subscriber had it all)"),
        ("reconnect -> last replayed", _fmt(r.get("reconnect_to_last_replayed_s"), "s")
         + f"  (~{_fmt(r.get('replay_rate_achieved'), 'msg/s')} replayed)"),
        ("gateway RSS before/normal", f"{_fmt(rss.get('before'))} / {_fmt(rss.get('normal'))}"
                                      " KiB"),
        ("gateway RSS outage end/max", f"{_fmt(rss.get('outage_end'))} /"
         f" {_fmt(rss.get('by_phase', {}).get('outage', {}).get('max'))} KiB"),
        ("gateway RSS after replay", _fmt(rss.get("after"), "KiB")),
        ("PUBACK p50/p99 normal", latrow("normal")),
        ("PUBACK p50/p99 outage", latrow("outage")),
        ("PUBACK p50/p99 recovery", latrow("recovery")),
        ("generator events", json.dumps(r.get("generator_counts"))),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for warning in r.get("warnings", []):
        print(f"\nWARNING: {warning}")
    if r.get("warnings"):
        print(f"spool rows after the drain: {r.get('spool_rows_after_drain')}; subscriber"
              f" disconnects: {r.get('subscriber_disconnects', 0)}; messages received during"
              f" the final drain: {r.get('received_during_drain')}")
        if r.get("mosquitto_log_tail"):
            print("mosquitto log tail:\n" + "\n".join(r["mosquitto_log_tail"]))
        if r.get("gateway_log_tail"):
            print(f"gateway log tail:\n{r['gateway_log_tail']}")
    print(f"\nrun took {r.get('run_s')} s")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outage", type=float, default=60.0, help="outage seconds (default 60)")
    ap.add_argument("--rate", type=float, default=1000.0, help="total msg/s (default 1000)")
    ap.add_argument("--warmup", type=float, default=10.0, help="normal phase seconds")
    ap.add_argument("--clients", type=int, default=200, help="MQTT-SN clients (default 200)")
    ap.add_argument("--replay-rate", type=float, default=5000.0,
                    help="EGW_SPOOL__REPLAY_RATE in msg/s (default 5000)")
    ap.add_argument("--payload-size", type=int, default=64)
    ap.add_argument("--retry-timeout", type=float, default=5.0,
                    help="MQTT-SN retransmission timeout of the clients (s)")
    ap.add_argument("--max-retries", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    if args.outage <= 0 or args.rate <= 0 or args.warmup < 0:
        ap.error("--outage and --rate must be > 0, --warmup >= 0")
    if args.payload_size < STAMP.size:
        ap.error(f"--payload-size must be >= {STAMP.size}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {}
    error: str | None = None
    try:
        run(args, result)
    except (HardCap, RuntimeError, TimeoutError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"benchmark failed: {error}", file=sys.stderr)
    if "sent" in result:
        print_report(result)
    if args.json is not None:
        if error:
            result["error"] = error
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 1 if error or result.get("acked_lost") or result.get("acked_not_delivered") else 0


if __name__ == "__main__":
    sys.exit(main())
