"""Helpers shared by the benchmarks: ports, a private mosquitto, the gateway subprocess, /proc.

Everything here binds or connects to loopback only, and every process it starts is stopped by
its own pid (SIGTERM, then SIGKILL after a timeout).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALLED_ENV = "BENCH_INSTALLED_GATEWAY"
"""Set to 1: import the gateway installed for this interpreter, not this checkout's."""
if os.environ.get(INSTALLED_ENV) != "1" and str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from gateway.mqttsn.codec import MalformedPacket, decode, encode  # noqa: E402
from gateway.mqttsn.packets import GwInfo, SearchGw  # noqa: E402

HOST = "127.0.0.1"
MOSQUITTO = "/usr/sbin/mosquitto"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------------- ports, sockets
def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago (SOCK_STREAM for TCP, SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_tcp(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    """Until something accepts TCP connections on 127.0.0.1:port; RuntimeError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process {proc.pid} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s") from None
            time.sleep(0.02)


def raise_nofile(wanted: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit towards `wanted` (up to the hard limit): (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft, hard


# ---------------------------------------------------------------------------------- processes
def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 5.0) -> int | None:
    """SIGTERM the process by its pid, SIGKILL it after `timeout`; its exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout)
    return proc.returncode


def stop_pid(pid: int | None, timeout: float = 5.0) -> None:
    """The same for a process that is not our Popen (e.g. a multiprocessing child): by pid."""
    if pid is None or not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class Mosquitto:
    """A private mosquitto on a free loopback port with a throw-away config and no limits."""

    def __init__(self, extra_conf: Sequence[str] = ()) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-mosq-"))
        self.port = free_port()
        self.url = f"mqtt://{HOST}:{self.port}"
        conf_lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "persistence false",
            # 0 = no limit: nothing is queued away or held back by the broker during a burst.
            "max_queued_messages 0",
            "max_inflight_messages 0",
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"log_dest file {self.tmp / 'mosquitto.log'}",
            *extra_conf,
        ]
        self.conf = self.tmp / "mosquitto.conf"
        self.conf.write_text("\n".join(conf_lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> Mosquitto:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_tcp(self.port, timeout, self.proc)
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


class GatewayProcess:
    """`python -m gateway run` configured only by EGW_ environment variables.

    By default the gateway of this checkout runs (it is put first on PYTHONPATH); with
    ``python`` (an interpreter of another environment, e.g. one holding the mypyc-compiled
    build, see docs/benchmarks.md) the gateway installed there runs instead, from a neutral
    working directory so that this checkout cannot shadow it."""

    def __init__(
        self,
        mqttsn_port: int,
        broker_url: str | None,
        extra_env: Mapping[str, str] | None = None,
        python: str | None = None,
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
        self.port = mqttsn_port
        self.log_path = self.tmp / "gateway.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("EGW_")}
        self.gateway_env = {
            "EGW_MQTTSN__HOST": HOST,
            "EGW_MQTTSN__PORT": str(mqttsn_port),
            "EGW_HTTP__HOST": HOST,
            "EGW_HTTP__PORT": "0",
            "EGW_DATA_DIR": str(self.tmp / "data"),
            "EGW_LOG__LEVEL": "warning",
        }
        if broker_url:
            self.gateway_env["EGW_BROKER__URL"] = broker_url
        self.gateway_env.update(extra_env or {})
        env.update(self.gateway_env)
        self.python = python or sys.executable
        if python is None:
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])
            )
        else:
            env.pop("PYTHONPATH", None)
        self._cwd = REPO_ROOT if python is None else self.tmp
        self._env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = False
        self._log: Any = None

    def start(self, timeout: float = 15.0) -> GatewayProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [self.python, "-m", "gateway", "run"],
            cwd=self._cwd, env=self._env,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        if not wait_mqttsn(self.port, timeout, self.proc):
            status = self.proc.poll()
            what = (
                f"exited with status {status} before answering SEARCHGW" if status is not None
                else f"did not answer SEARCHGW on udp {HOST}:{self.port} within {timeout} s"
            )
            raise RuntimeError(f"the gateway {what}; log tail:\n{self.log_tail()}")
        self.ready = True
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        status = stop_process(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return status

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def shutdown(self, result: dict[str, Any]) -> None:
        """Stop, record an abnormal exit (with the log tail) in `result`, remove the temp dir."""
        status = self.stop()
        if status not in (0, None) and self.ready:
            result["gateway_exit"] = status
            print(f"gateway exited with {status}; log tail:\n{self.log_tail()}", file=sys.stderr)
        self.cleanup()


def fmt(value: Any, unit: str = "") -> str:
    """A figure for the report tables: thousands separators, 3 significant digits below 100."""
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.3g}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip()


def add_gateway_python_option(parser: Any) -> None:
    parser.add_argument(
        "--gateway-python", default=None, metavar="PYTHON",
        help="run the gateway installed for this interpreter (e.g. a venv holding the "
        "mypyc-compiled build) instead of this checkout's",
    )


def compiled_modules(python: str | None) -> int:
    """How many of the gateway's modules are compiled extensions for that interpreter."""
    probe = (
        "import importlib, pkgutil, gateway\n"
        "n = 0\n"
        "for m in pkgutil.walk_packages(gateway.__path__, 'gateway.'):\n"
        "    spec = importlib.util.find_spec(m.name)\n"
        "    n += bool(spec and spec.origin and spec.origin.endswith('.so'))\n"
        "print(n)"
    )
    cwd = REPO_ROOT if python is None else Path(tempfile.gettempdir())
    out = subprocess.run(
        [python or sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True,
        check=True, timeout=60,
    )
    return int(out.stdout.strip())


def wait_mqttsn(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> bool:
    """Poll udp 127.0.0.1:port with SEARCHGW until a GWINFO comes back (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    probe = encode(SearchGw(radius=0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((HOST, port))
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            try:
                sock.send(probe)
                while True:
                    if isinstance(decode(sock.recv(2048)), GwInfo):
                        return True
            except (TimeoutError, ConnectionRefusedError, MalformedPacket):
                time.sleep(0.05)
    return False


# ------------------------------------------------------------------------------------- /proc
def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in KiB, from /proc/PID/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process in seconds, from /proc/PID/stat (children not included)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ")" field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def child_pids(pid: int | None) -> list[int]:
    """The direct children of a process (e.g. the gateway's recogniser worker)."""
    if pid is None:
        return []
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def rerun_with_installed_gateway(python: str, script: Path, args: Sequence[str]) -> int:
    """Run an in-process bench again under another interpreter, on the gateway installed for it
    (this checkout kept off sys.path); print how many of its modules are compiled first."""
    sys.stdout.write(f"gateway: {compiled_modules(python)} modules compiled\n")
    sys.stdout.flush()
    return subprocess.run(
        [python, str(script), *args], env={**os.environ, INSTALLED_ENV: "1"},
        cwd=tempfile.gettempdir(), check=False,
    ).returncode


def pin_cpus() -> tuple[int, int] | None:
    """(server CPU, load-generator CPU) for --pin: the last and the first CPU this process may
    use; None with fewer than two."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[-1], cpus[0]) if len(cpus) >= 2 else None


def pin_tree(pid: int, cpu: int) -> None:
    """Bind every thread of a process and of its direct children to one CPU (benchmarks only:
    keeps the scheduler from moving the server onto the load generator's core)."""
    for owner in (pid, *child_pids(pid)):
        for task in Path(f"/proc/{owner}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(int(task.name), {cpu})


def tree_cpu_seconds(pid: int | None) -> float | None:
    """`cpu_seconds` of a process plus its live direct children (its worker processes)."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(child) or 0.0 for child in child_pids(pid))


def sched_wait_seconds(pid: int | None) -> float | None:
    """Seconds the threads of a process were runnable but waited for a CPU (task/*/schedstat).

    Grows when the machine is oversubscribed: the process wanted to run but others had the cores.
    """
    if pid is None:
        return None
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that just ended
    return total / 1e9


def host_cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat (the whole machine, not just us)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, IndexError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def cpu_pressure_us() -> int | None:
    """PSI "some" total of /proc/pressure/cpu: microseconds during which a task waited for a CPU."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                return int(line.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        pass
    return None


def udp_counters() -> dict[str, int]:
    """The Udp: line of /proc/net/snmp (namespace-wide: other processes count in it too)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return {}
    rows = [line for line in lines if line and line[0] == "Udp:"]
    if len(rows) < 2:
        return {}
    return {name: int(value) for name, value in zip(rows[0][1:], rows[1][1:], strict=False)}


def machine_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ------------------------------------------------------------------------------------ statistics
def percentile(values: Sequence[float], pct: float, *, is_sorted: bool = False) -> float | None:
    """The `pct` percentile (0..100) with linear interpolation between ranks; None if empty."""
    if not values:
        return None
    data = values if is_sorted else sorted(values)
    rank = (len(data) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(data[low])
    return float(data[low] + (data[high] - data[low]) * (rank - low))


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
