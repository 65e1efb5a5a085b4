"""CoAP ingest benchmark: raw-UDP load -> the gateway's CoAP server, compared with bare aiocoap.

Three kinds of process, all on 127.0.0.1, each started and stopped by its pid:

* the server under test, a child running this file with ``_serve gateway`` (``run_coap_server``
  with a real ``MessageBus`` + ``NullLink`` and the real ``gateway.pipeline.ingest.Pipeline``,
  i.e. the full ingest path: our codec -> normalise -> Pipeline.ingest (JSON re-publish on the
  bus) -> piggybacked 2.04 with a CBOR summary), or ``_serve aiocoap`` (a bare aiocoap server
  context whose only resource answers every POST with an empty 2.04: the ceiling of aiocoap);
  or ``_serve gateway-stub`` (``--targets gateway-stub``: our front-end with the ingest stage
  replaced by a canned 2.04, to measure the front-end alone); all under uvloop;
* the load generator, a child running this file with ``_generate``: one process, ``--sockets``
  connected UDP sockets (distinct source ports), SenML-CBOR POSTs to
  ``devices/bench-{socket}/telemetry`` with a 4-byte unique token each, CON or NON.
  ``open`` mode paces sends at ``--rate`` (1 ms batches) whether or not answers come back;
  ``closed`` mode keeps ``--window`` requests outstanding (capacity). A request is answered
  when a response with its token arrives (ACK for CON, NON response for NON); latency is
  send -> answer; loss is sent - answered after a 1 s drain. No retransmissions: a lost
  request stays lost, which is what loss measures;
* this parent, which runs the phases one after the other and prints (or writes) a JSON report.

With ``--server auto`` (default) the gateway target is the real ``python -m gateway run`` (EGW_
environment, no broker) as soon as ``gateway/app.py`` starts ``run_coap_server``; until then it
is the ``_serve gateway`` runner above. The report names the server it measured.

    python3 bench/coap_ingest.py                          # default phases, ~45 s
    python3 bench/coap_ingest.py --rate 20000 --duration 5 --targets gateway
    python3 bench/coap_ingest.py --json out.json

Server CPU seconds come from /proc/PID/stat; the socket's receive-queue overflows from the
namespace-wide ``RcvbufErrors`` of /proc/net/snmp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # also puts the repository root on sys.path

HOST = common.HOST
HEADER = struct.Struct("!BBH")
TOKEN = struct.Struct("!I")
CON, NON, ACK, RST = 0, 1, 2, 3
POST = 0x02
CHANGED = 0x44
BATCH_INTERVAL = 0.001
MAX_BURST = 2000
DRAIN = 1.0
GENERATOR_STALL = 0.005
SLOW_WINDOW = 0.010  # a 100 ms window of send time whose slowest answer took longer than this
MAX_DURATION = 60.0


# ================================================================================== servers
def serve(kind: str, port: int) -> None:
    """Child process: run one server on 127.0.0.1:port until SIGTERM, then print counters."""
    import uvloop  # noqa: PLC0415

    if kind == "aiocoap":
        uvloop.run(_serve_aiocoap(port))
    else:
        uvloop.run(_serve_gateway(port, stub=kind == "gateway-stub"))


async def _until_sigterm() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


def build_pipeline(bus: Any) -> tuple[Any, str]:
    """The real ingest pipeline, built as the app builds it (its constructor is evolving)."""
    import inspect  # noqa: PLC0415

    from gateway.pipeline.ingest import Pipeline  # noqa: PLC0415

    if "decider" not in inspect.signature(Pipeline).parameters:
        return Pipeline(bus), "Pipeline(bus)"
    from gateway.pipeline.decide import Decider  # noqa: PLC0415
    from gateway.rules.engine import RuleEngine  # noqa: PLC0415
    from gateway.rules.loader import load_rules  # noqa: PLC0415

    decider = Decider(RuleEngine(load_rules()), bus, "bench-1")
    return Pipeline(bus, decider), "Pipeline(bus, Decider(RuleEngine(default rules)))"


async def _serve_gateway(port: int, *, stub: bool = False) -> None:
    from gateway.bridge.null_link import NullLink  # noqa: PLC0415
    from gateway.coap.server import CoapServer  # noqa: PLC0415
    from gateway.config import Settings  # noqa: PLC0415
    from gateway.delivery.bus import MessageBus  # noqa: PLC0415
    from gateway.logconfig import configure_logging  # noqa: PLC0415

    settings = Settings(coap={"host": HOST, "port": port}, log={"level": "warning"})
    configure_logging(settings.log)
    bus = MessageBus()
    bus.link = NullLink(settings, bus.on_broker_message)
    pipeline, _ = build_pipeline(bus)
    # The same object run_coap_server builds; created here to read its counters at the end.
    server = CoapServer(settings.coap, bus, pipeline)
    if stub:  # the front-end alone: every request gets one canned 2.04, nothing is ingested
        from gateway.coap.handler import Outcome  # noqa: PLC0415

        canned = Outcome(CHANGED, cbor2.dumps({"accepted": 1, "actions": []}), 60)
        server.ingest.handle = lambda *_args: canned  # type: ignore[method-assign]
    await server.start()
    try:
        await _until_sigterm()
    finally:
        await server.close()
        print(json.dumps({"counters": dict(server.counters), "dedup": server.dedup_entries}))


async def _serve_aiocoap(port: int) -> None:
    import aiocoap  # noqa: PLC0415
    from aiocoap import resource  # noqa: PLC0415

    class Trivial(resource.Resource, resource.PathCapable):  # type: ignore[misc]
        async def render_post(self, request: Any) -> Any:
            return aiocoap.Message(code=aiocoap.CHANGED)

    site = resource.Site()
    site.add_resource(["devices"], Trivial())
    context = await aiocoap.Context.create_server_context(
        site, bind=(HOST, port), transports=["udp6"]
    )
    try:
        await _until_sigterm()
    finally:
        await context.shutdown()
        print(json.dumps({"counters": {}}))


def wait_coap(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """CoAP ping (empty CON) until the RST comes back."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((HOST, port))
        sock.settimeout(0.1)
        mid = 1
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                sock.send(HEADER.pack(0x40, 0, mid))
                if sock.recv(64)[:1] == bytes((0x70,)):
                    return
            mid += 1
        raise RuntimeError(f"no CoAP server on udp {HOST}:{port} after {timeout} s")


# ================================================================================ generator
def _options(device: str) -> bytes:
    """Uri-Path devices/{device}/telemetry, Content-Format 112 (all lengths < 13)."""
    path = [b"devices", device.encode(), b"telemetry"]
    out = bytes((0xB0 | len(path[0]),)) + path[0]
    out += bytes((len(path[1]),)) + path[1]
    out += bytes((len(path[2]),)) + path[2]
    return out + bytes((0x11, 112))  # delta 1 (11 -> 12), length 1


def generate(cfg: dict[str, Any]) -> dict[str, Any]:
    """Child process: send for cfg["duration"] s, drain, report counts and latencies."""
    n_sockets = cfg["sockets"]
    if cfg.get("pin_cpu") is not None:
        os.sched_setaffinity(0, {cfg["pin_cpu"]})
    common.raise_nofile(n_sockets + 100)
    socks = []
    epoll = select.epoll()
    fd_index: dict[int, int] = {}
    for index in range(n_sockets):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.connect((HOST, cfg["port"]))
        sock.setblocking(False)
        fd_index[sock.fileno()] = index
        epoll.register(sock.fileno(), select.EPOLLIN)
        socks.append(sock)
    payload = cbor2.dumps([{-2: "urn:dev:bench:", 0: "temp", 1: "Cel", 2: 21.5}])
    suffixes = [_options(f"bench-{index}") + b"\xff" + payload for index in range(n_sockets)]
    non_every = round(1 / cfg["non_fraction"]) if cfg["non_fraction"] > 0 else 0
    sent_at: dict[bytes, float] = {}
    latencies: list[float] = []
    # (send time, latency) per 100 ms of send time: a slow stretch shows as a window of its own
    window_max: dict[int, float] = {}
    codes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    mids = [0] * n_sockets
    counter = 0
    sent = {"con": 0, "non": 0}
    answered = {"con": 0, "non": 0}
    rate = cfg["rate"]
    window = cfg["window"]
    closed = cfg["mode"] == "closed"
    perf = time.perf_counter

    def send_one() -> None:
        nonlocal counter
        index = counter % n_sockets
        is_non = non_every and counter % non_every == 0
        token = TOKEN.pack(counter & 0xFFFFFFFF)
        mid = mids[index]
        mids[index] = (mid + 1) & 0xFFFF
        first = 0x44 | ((NON if is_non else CON) << 4)
        try:
            socks[index].send(HEADER.pack(first, POST, mid) + token + suffixes[index])
        except OSError as exc:
            errors[f"send_{type(exc).__name__}"] += 1
        else:
            sent_at[token] = perf()
            sent["non" if is_non else "con"] += 1
        counter += 1

    def receive(timeout: float) -> None:
        for fd, _mask in epoll.poll(timeout, 4096):
            sock = socks[fd_index[fd]]
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                except OSError as exc:
                    errors[f"recv_{type(exc).__name__}"] += 1
                    break
                now = perf()
                if len(data) < 8:
                    errors["short_response"] += 1
                    continue
                first, code = data[0], data[1]
                started = sent_at.pop(data[4 : 4 + (first & 0x0F)], None)
                if started is None:
                    errors["unmatched_response"] += 1
                    continue
                latency = now - started
                latencies.append(latency)
                slot = int((started - start) * 10)
                if latency > window_max.get(slot, 0.0):
                    window_max[slot] = latency
                codes[f"{code >> 5}.{code & 0x1F:02d}"] += 1
                answered["non" if (first >> 4) & 3 == NON else "con"] += 1

    start = perf()
    end = start + cfg["duration"]
    cpu0 = time.process_time()
    # The generator's own stalls (gaps between its loop turns) inflate the latencies it
    # measures: reported, so that a bad p99 can be told apart from a slow server.
    stalls = 0
    longest_gap = 0.0
    previous = start
    while True:
        now = perf()
        if now >= end:
            break
        gap = now - previous
        previous = now
        if gap > GENERATOR_STALL:
            stalls += 1
            longest_gap = max(longest_gap, gap)
        if closed:
            for _ in range(min(MAX_BURST, window - len(sent_at))):
                send_one()
            receive(0.001)
        else:
            due = int((now - start) * rate) - counter
            for _ in range(min(due, MAX_BURST)):
                send_one()
            receive(BATCH_INTERVAL)
    send_time = perf() - start
    drain_end = perf() + DRAIN
    while sent_at and perf() < drain_end:
        receive(0.01)
    cpu = time.process_time() - cpu0
    for sock in socks:
        sock.close()
    epoll.close()
    latencies.sort()
    total_sent = sent["con"] + sent["non"]
    total_answered = answered["con"] + answered["non"]

    def ms(pct: float) -> float | None:
        value = common.percentile(latencies, pct, is_sorted=True)
        return None if value is None else round(value * 1000, 3)

    return {
        "mode": cfg["mode"],
        "offered_rate": None if closed else rate,
        "window": window if closed else None,
        "send_seconds": round(send_time, 3),
        "sent": sent,
        "answered": answered,
        "send_rate": round(total_sent / send_time),
        "answered_rate": round(total_answered / send_time),
        "loss": total_sent - total_answered,
        "loss_pct": round(100 * (total_sent - total_answered) / max(1, total_sent), 3),
        "latency_ms": {"p50": ms(50), "p90": ms(90), "p99": ms(99), "max": ms(100)},
        "codes": dict(codes),
        "errors": dict(errors),
        "generator_cpu_s": round(cpu, 2),
        "generator_stalls_over_5ms": stalls,
        "generator_longest_gap_ms": round(longest_gap * 1000, 1),
        "slow_windows_100ms": sum(1 for worst in window_max.values() if worst > SLOW_WINDOW),
        "windows_100ms": len(window_max),
    }


# =================================================================================== phases
def _child(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    paths = [str(common.REPO_ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=common.REPO_ROOT, env=env, stdin=subprocess.DEVNULL, **kwargs,
    )


def run_phase(port: int, server_pid: int, cfg: dict[str, Any]) -> dict[str, Any]:
    cpu0 = common.cpu_seconds(server_pid)
    wait0 = common.sched_wait_seconds(server_pid)
    host0 = common.host_cpu_jiffies()
    psi0 = common.cpu_pressure_us()
    udp0 = common.udp_counters()
    gen = _child(["_generate", json.dumps({**cfg, "port": port})], stdout=subprocess.PIPE)
    try:
        out, _ = gen.communicate(timeout=cfg["duration"] + 30)
    finally:
        common.stop_process(gen)
    cpu1 = common.cpu_seconds(server_pid)
    wait1 = common.sched_wait_seconds(server_pid)
    host1 = common.host_cpu_jiffies()
    psi1 = common.cpu_pressure_us()
    udp1 = common.udp_counters()
    result: dict[str, Any] = json.loads(out)
    seconds = result["send_seconds"]
    if cpu0 is not None and cpu1 is not None:
        result["server_cpu_s"] = round(cpu1 - cpu0, 2)
        result["server_cpu_share"] = round((cpu1 - cpu0) / seconds, 2)
    if wait0 is not None and wait1 is not None:
        # Runnable but waiting for a core: the machine was oversubscribed (other processes).
        result["server_runqueue_wait_share"] = round((wait1 - wait0) / seconds, 2)
    if host0 is not None and host1 is not None and host1[1] > host0[1]:
        result["host_busy_share"] = round((host1[0] - host0[0]) / (host1[1] - host0[1]), 2)
    if psi0 is not None and psi1 is not None:
        result["cpu_pressure_share"] = round((psi1 - psi0) / 1e6 / seconds, 2)
    result["udp_rcvbuf_errors"] = udp1.get("RcvbufErrors", 0) - udp0.get("RcvbufErrors", 0)
    return result


def app_serves_coap() -> bool:
    """Whether ``python -m gateway run`` starts the CoAP server (the app wires it in)."""
    return "run_coap_server" in (common.REPO_ROOT / "gateway" / "app.py").read_text()


def start_server(kind: str, args: argparse.Namespace, port: int) -> tuple[Any, str]:
    """(process, description) of the server under test, answering CoAP pings."""
    use_app = args.server == "app" or (args.server == "auto" and app_serves_coap())
    if kind == "gateway" and use_app:
        gateway = common.GatewayProcess(
            common.free_port(socket.SOCK_DGRAM), None,
            {"EGW_COAP__HOST": HOST, "EGW_COAP__PORT": str(port)},
            python=args.gateway_python,
        ).start()
        assert gateway.proc is not None
        wait_coap(port, 15, gateway.proc)
        return gateway, "python -m gateway run (EGW_ env, no broker)"
    proc = _child(["_serve", kind, str(port)], stdout=subprocess.PIPE)
    time.sleep(0.3)  # aiocoap drops (with a traceback) datagrams that beat its own setup
    wait_coap(port, 15, proc)
    if kind == "aiocoap":
        return proc, "bare aiocoap 0.4 server context (udp6), one trivial POST resource"
    if kind == "gateway-stub":
        return proc, "CoapServer with the ingest stage replaced by a canned 2.04 (front-end only)"
    return proc, "run_coap_server-equivalent runner: MessageBus+NullLink, real " + (
        "normalise + " + _pipeline_description()
    )


def _pipeline_description() -> str:
    from gateway.bridge.null_link import NullLink  # noqa: PLC0415
    from gateway.config import Settings  # noqa: PLC0415
    from gateway.delivery.bus import MessageBus  # noqa: PLC0415

    async def describe() -> str:
        bus = MessageBus()
        bus.link = NullLink(Settings(), bus.on_broker_message)
        return build_pipeline(bus)[1]

    return asyncio.run(describe())


def _measure(
    kind: str, args: argparse.Namespace, port: int, pid: int | None, report: dict[str, Any]
) -> dict[str, Any]:
    assert pid is not None
    report["server_rss_kb_start"] = common.rss_kb(pid)
    cpus = common.pin_cpus() if args.pin else None
    if cpus is not None:
        common.pin_tree(pid, cpus[0])
        report["pinned"] = {"server_cpu": cpus[0], "generator_cpu": cpus[1]}
    base = {
        "sockets": args.sockets, "duration": args.duration, "window": args.window,
        "pin_cpu": None if cpus is None else cpus[1],
    }
    phases = {
        "open_con": {**base, "mode": "open", "rate": args.rate, "non_fraction": 0.0},
        "open_non": {**base, "mode": "open", "rate": args.rate, "non_fraction": 1.0},
        "closed_con": {
            **base, "mode": "closed", "rate": 0, "non_fraction": 0.0,
            "duration": args.capacity_duration,
        },
    }
    for name in args.phases:
        print(f"[{kind}] {name} ...", file=sys.stderr, flush=True)
        report["phases"][name] = run_phase(port, pid, phases[name])
        print(f"[{kind}] {name}: {_line(report['phases'][name])}", file=sys.stderr, flush=True)
    report["server_rss_kb_end"] = common.rss_kb(pid)
    return report


def run_target(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    port = common.free_port(socket.SOCK_DGRAM)
    report: dict[str, Any] = {"target": kind, "phases": {}}
    server, description = start_server(kind, args, port)
    if isinstance(server, common.GatewayProcess):
        report["compiled_modules"] = common.compiled_modules(args.gateway_python)
        description += f", {report['compiled_modules']} modules compiled (mypyc)"
    report["server_under_test"] = description
    print(f"[{kind}] server: {description}", file=sys.stderr, flush=True)
    if isinstance(server, common.GatewayProcess):
        try:
            return _measure(kind, args, port, server.pid, report)
        finally:
            server.stop()
            server.cleanup()
    try:
        _measure(kind, args, port, server.pid, report)
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGTERM)
        try:
            out, _ = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            common.stop_process(server)
            out = b""
    with contextlib.suppress(ValueError, IndexError):
        report["server"] = json.loads(out.decode().strip().splitlines()[-1])
    return report


def _line(phase: dict[str, Any]) -> str:
    lat = phase["latency_ms"]
    return (
        f"sent {phase['send_rate']}/s answered {phase['answered_rate']}/s "
        f"loss {phase['loss_pct']}% p50 {lat['p50']} ms p99 {lat['p99']} ms "
        f"server cpu {phase.get('server_cpu_share')} "
        f"(runqueue wait {phase.get('server_runqueue_wait_share')}, "
        f"host busy {phase.get('host_busy_share')}) codes {phase['codes']}; "
        f"100 ms windows with an answer > 10 ms: {phase['slow_windows_100ms']} of "
        f"{phase['windows_100ms']}; generator stalls > 5 ms: "
        f"{phase['generator_stalls_over_5ms']} (longest {phase['generator_longest_gap_ms']} ms)"
    )


def breakdown(rounds: int = 20000) -> dict[str, float]:
    """In-process microseconds per request for each stage of the fast path (no sockets)."""
    import timeit  # noqa: PLC0415

    from gateway.bridge.null_link import NullLink  # noqa: PLC0415
    from gateway.coap.fastpath import classify  # noqa: PLC0415
    from gateway.coap.message import decode  # noqa: PLC0415
    from gateway.config import Settings  # noqa: PLC0415
    from gateway.delivery.bus import MessageBus  # noqa: PLC0415
    from gateway.pipeline.normalise import normalise_telemetry  # noqa: PLC0415
    from schemas import CoapSummary  # noqa: PLC0415

    payload = cbor2.dumps([{-2: "urn:dev:bench:", 0: "temp", 1: "Cel", 2: 21.5}])
    datagram = HEADER.pack(0x44, POST, 1) + TOKEN.pack(1) + _options("bench-1") + b"\xff"
    datagram += payload
    message = decode(datagram)
    now = time.time()
    batch = normalise_telemetry("bench-1", payload, 112, source="coap", now=now)

    async def ingest_cost() -> float:
        settings = Settings()
        bus = MessageBus()
        bus.link = NullLink(settings, bus.on_broker_message)
        pipeline, _ = build_pipeline(bus)
        return timeit.timeit(lambda: pipeline.ingest(batch), number=rounds)

    def per(seconds: float) -> float:
        return round(seconds / rounds * 1e6, 2)

    result = CoapSummary(accepted=1)
    return {
        "decode_us": per(timeit.timeit(lambda: decode(datagram), number=rounds)),
        "classify_us": per(timeit.timeit(lambda: classify(message), number=rounds)),
        "normalise_telemetry_us": per(timeit.timeit(
            lambda: normalise_telemetry("bench-1", payload, 112, source="coap", now=now),
            number=rounds)),
        "pipeline_ingest_us": per(asyncio.run(ingest_cost())),
        "summary_cbor_us": per(timeit.timeit(
            lambda: cbor2.dumps(result.model_dump(mode="json", exclude_none=True)),
            number=rounds)),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=30000, help="offered requests/s (open)")
    parser.add_argument("--duration", type=float, default=8, help="seconds per open phase")
    parser.add_argument("--capacity-duration", type=float, default=5,
                        help="seconds of the closed-loop (capacity) phase")
    parser.add_argument("--window", type=int, default=64,
                        help="requests outstanding in the closed-loop phase")
    parser.add_argument("--sockets", type=int, default=200, help="generator source ports")
    parser.add_argument("--targets", nargs="+", choices=("gateway", "aiocoap", "gateway-stub"),
                        default=["gateway", "aiocoap"],
                        help="gateway-stub: our front-end with ingest replaced by a canned answer")
    parser.add_argument("--phases", nargs="+", choices=("open_con", "open_non", "closed_con"),
                        default=["open_con", "open_non", "closed_con"])
    parser.add_argument("--server", choices=("auto", "runner", "app"), default="auto",
                        help="gateway target: the full app (python -m gateway run) when it "
                        "serves CoAP (auto), or the bench-only runner")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--pin", action="store_true",
                        help="bind the server (all its threads and worker processes) to one CPU "
                        "and the load generator to another, so that the scheduler never puts "
                        "them on the same core")
    common.add_gateway_python_option(parser)
    args = parser.parse_args(argv)
    if args.duration > MAX_DURATION or args.capacity_duration > MAX_DURATION:
        parser.error(f"phases are limited to {MAX_DURATION} s")
    if args.pin and common.pin_cpus() is None:
        parser.error("--pin needs at least two CPUs")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        serve(argv[1], int(argv[2]))
        return 0
    if argv[:1] == ["_generate"]:
        print(json.dumps(generate(json.loads(argv[1]))))
        return 0
    args = parse_args(argv)
    report: dict[str, Any] = {
        "machine": common.machine_info(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "fast_path_stage_costs": breakdown(),
    }
    print(f"stage costs (in-process): {report['fast_path_stage_costs']}", file=sys.stderr)
    report["targets"] = [run_target(kind, args) for kind in args.targets]
    text = json.dumps(report, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
