"""The gateway process: one asyncio.TaskGroup owns every service; one stop event ends them all."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable

import structlog

from gateway.bridge.link import BrokerLink, create_link
from gateway.coap.server import CoapServer, run_coap_server
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.delivery.uplink import SpoolingLink
from gateway.errors import ConfigError, GatewayError
from gateway.http import RecognizerModeSource, run_http_endpoint
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import Address
from gateway.persistence.sessions import SessionStore
from gateway.pipeline.decide import Decider
from gateway.pipeline.ingest import Pipeline
from gateway.recognizer.cloud import CloudLink
from gateway.recognizer.failover import Failover
from gateway.recognizer.heartbeat import CloudSupervisor
from gateway.recognizer.policy import EdgeFirstPolicy
from gateway.recognizer.service import LocalRecognizer, OccupancyRecognizer
from gateway.router import MqttSnRouter
from gateway.rules.engine import RuleEngine
from gateway.rules.loader import load_rules
from gateway.spool import DEFAULT_FILENAME as SPOOL_FILENAME
from gateway.spool import Spool
from gateway.transport.udp import open_mqttsn_endpoint

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE = 5.0
SETTLE_TIMEOUT = 1.5  # of the grace, twice at most: broker acknowledgements, spool commits


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel every service at once."""


class Gateway:
    """A running gateway. `run()` returns after `stop()` once every service has ended."""

    def __init__(
        self, settings: Settings, *, on_ready: Callable[[], None] | None = None
    ) -> None:
        self.settings = settings
        self._on_ready = on_ready  # called once every service is up
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.mqttsn_address: Address | None = None
        self.core: GatewayCore | None = None
        self.router: MqttSnRouter | None = None
        self.bus: MessageBus | None = None
        self.pipeline: Pipeline | None = None
        self.coap: CoapServer | None = None
        self.uplink: SpoolingLink | None = None
        self.recognizers: list[LocalRecognizer | OccupancyRecognizer] = []
        # The cloud failover state, when one runs; None: the local models decide ("local").
        self.recognizer_mode: RecognizerModeSource | None = None
        self.cloud: CloudSupervisor | None = None  # EGW_CLOUD__ENABLED: heartbeats, failover
        self.failover: Failover | None = None
        self.http_address: tuple[str, int] | None = None
        self._closers: list[Callable[[], None]] = []
        self._store_sessions_soon = asyncio.Event()  # set by the router for a held PUBREC

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        store = SessionStore(settings.data_dir / "mqttsn-sessions.sqlite3")
        transport: asyncio.DatagramTransport | None = None
        try:
            core, bus, pipeline, recognizers = await self._assemble(store)
            router = MqttSnRouter(core, bus, pipeline)
            self.router = router
            transport, protocol = await open_mqttsn_endpoint(
                core, router.on_event, settings.mqttsn.host, settings.mqttsn.port
            )
            router.flush = protocol.flush
            router.request_store = self._store_sessions_soon.set
            self.mqttsn_address = transport.get_extra_info("sockname")
            log.info("mqttsn_listening", addr=_format(self.mqttsn_address),
                     broker=settings.broker.url or None)
            async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as tg:
                tg.create_task(bus.link.run(), name="broker-link")
                tg.create_task(
                    self._flush_sessions(core, store, protocol.flush),
                    name="session-flusher",
                )
                for recognizer in recognizers:
                    tg.create_task(recognizer.run(), name=f"recognizer-{type(recognizer).__name__}")
                if self.cloud is not None:
                    tg.create_task(self.cloud.run(), name="cloud-supervisor")
                if settings.http.enabled:
                    http_ready = asyncio.Event()
                    tg.create_task(
                        run_http_endpoint(self, settings.http, http_ready, self._http_started),
                        name="http-endpoint",
                    )
                    await http_ready.wait()  # a busy port fails the group with HttpPortInUse
                coap_ready = asyncio.Event()
                tg.create_task(
                    run_coap_server(settings, bus, pipeline, coap_ready,
                                    on_started=self._coap_started),
                    name="coap-server",
                )
                await coap_ready.wait()  # a busy port fails the group with CoapPortInUse
                self.ready.set()
                if self._on_ready is not None:
                    self._on_ready()
                log.info("gateway_ready", site=settings.site)
                await self._stop.wait()
                log.info("gateway_stopping")
                deadline.reschedule(loop.time() + SHUTDOWN_GRACE)
                if self.uplink is not None:
                    # Nothing broker-bound is left only in memory: acknowledged or spooled.
                    await self.uplink.settle(SETTLE_TIMEOUT)
                raise _Stop
        except* _Stop:
            pass
        except* TimeoutError:
            log.warning("shutdown_grace_exceeded", grace_s=SHUTDOWN_GRACE)
        finally:
            if transport is not None:
                transport.close()
            if self.core is not None:
                await asyncio.to_thread(store.apply, self.core.take_dirty())
            store.close()
            for close in self._closers:
                close()
            log.info("gateway_stopped")

    async def _assemble(
        self, store: SessionStore
    ) -> tuple[GatewayCore, MessageBus, Pipeline, list[LocalRecognizer | OccupancyRecognizer]]:
        """Build the pieces (nothing runs yet): restored MQT-SN core, bus + link, pipeline."""
        settings = self.settings
        now = asyncio.get_running_loop().time()
        cfg = settings.mqttsn
        core = GatewayCore(
            cfg, now=now,
            advertise_to=(
                (cfg.advertise_address, cfg.advertise_port or cfg.port)
                if cfg.advertise_interval else None
            ),
            durable_qos2=True,  # _flush_sessions stores the sessions, then sends held PUBRECs
        )
        restored = core.restore(await asyncio.to_thread(store.load_all), now)
        log.info("sessions_restored", count=restored)
        self.core = core
        bus = MessageBus()
        link = create_link(settings, bus.on_broker_message)
        bus.link = await self._uplink(link)
        self.bus = bus
        engine = RuleEngine(load_rules(settings.rules.path))
        recognizers: list[LocalRecognizer | OccupancyRecognizer] = []
        text = occupancy = None
        if settings.recognizer.enabled:
            text = await LocalRecognizer.load(settings.recognizer)
            occupancy = await OccupancyRecognizer.load(settings.recognizer)
            recognizers = [text, occupancy]
        self.recognizers = list(recognizers)
        policy = self._cloud_policy(link, text)
        decider = Decider(engine, bus, self.gateway_id, shedding=self.cloud)
        self.pipeline = Pipeline(bus, decider, text, occupancy, policy=policy,
                                 shedding=self.cloud)
        return core, bus, self.pipeline, recognizers

    def _cloud_policy(
        self, link: BrokerLink, text: LocalRecognizer | None
    ) -> EdgeFirstPolicy | None:
        """Edge-first escalation to the cloud recogniser, when EGW_CLOUD__ENABLED."""
        cfg = self.settings.cloud
        if not cfg.enabled or text is None:
            return None
        if not isinstance(link, CloudLink):
            raise ConfigError("the cloud recognizer needs a broker link (EGW_BROKER__URL)")
        self.cloud = CloudSupervisor.create(
            cfg, link, gateway_id=self.gateway_id, site=self.settings.site,
            response_topic=cfg.response_topic.replace("{gateway_id}", self.gateway_id),
        )
        self.failover = self.cloud.failover
        self.recognizer_mode = self.cloud
        return EdgeFirstPolicy(
            text, self.cloud.client, self.cloud, escalate_below=cfg.escalate_below,
            escalate_other=cfg.escalate_other, deadline_ms=cfg.deadline_ms,
            safe_intent=cfg.safe_intent,
        )

    @property
    def gateway_id(self) -> str:
        return f"{self.settings.site}-{self.settings.mqttsn.gateway_id}"

    async def _uplink(self, link: BrokerLink) -> BrokerLink:
        """The broker link, behind the durable spool when there is a broker and it is on."""
        cfg = self.settings.spool
        if not self.settings.broker.url or not cfg.enabled:
            return link
        spool = await asyncio.to_thread(
            Spool, self.settings.data_dir / SPOOL_FILENAME,
            max_bytes=cfg.max_bytes, max_age_s=cfg.max_age_s,
            decision_share=cfg.decision_share, command_share=cfg.command_share,
            telemetry_share=cfg.telemetry_share, synchronous=cfg.synchronous,
            max_file_bytes=cfg.max_file_bytes or None,
        )
        self._closers.append(spool.close)
        self.uplink = SpoolingLink(link, spool, gateway_id=self.gateway_id,
                                   replay_rate=cfg.replay_rate, replay_burst=cfg.replay_burst)
        return self.uplink

    def _coap_started(self, server: CoapServer) -> None:
        self.coap = server

    def _http_started(self, address: tuple[str, int]) -> None:
        self.http_address = address

    async def _flush_sessions(
        self, core: GatewayCore, store: SessionStore, send: Callable[[], None]
    ) -> None:
        """Store changed sessions every flush interval, and at once when a QoS 2 PUBREC waits
        for it; the PUBRECs go out after the commit. Requests that arrive during a commit share
        the next one."""
        interval = self.settings.mqttsn.session_flush_interval
        soon = self._store_sessions_soon
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await soon.wait()
            soon.clear()
            changes = core.take_dirty()
            if changes:
                await asyncio.to_thread(store.apply, changes)
            if core.sessions_stored():
                send()


def _format(addr: Address | None) -> str:
    return "" if addr is None else f"{addr[0]}:{addr[1]}"


def _freeze_startup_objects() -> None:
    """Start-up objects (models, libraries, restored sessions) live as long as the process:
    moved out of the collector's generations, full collections no longer walk them, which
    shortens the pauses that set the tail latency. Process-wide, so only the process entry
    point does it (not a Gateway built by a test or an embedding application)."""
    gc.collect()
    gc.freeze()


async def run(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop every service within the grace period."""
    gateway = Gateway(settings, on_ready=_freeze_startup_objects)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, gateway.stop)
    try:
        await gateway.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def serve(settings: Settings) -> int:
    """The `edge-gateway run` entry point: uvloop when installed, exit code 0 on a clean stop."""
    try:
        import uvloop  # noqa: PLC0415 - optional accelerator
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    failures: list[BaseException] = []
    try:
        with contextlib.suppress(KeyboardInterrupt):
            runner(run(settings))
    except* (GatewayError, OSError) as group:  # a busy port, an unreadable rules file, ...
        failures.extend(group.exceptions)
    for exc in failures:
        log.error("gateway_failed", error=str(exc), kind=type(exc).__name__)
    return 1 if failures else 0
