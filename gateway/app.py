"""The gateway process: one asyncio.TaskGroup owns every service; one stop event ends them all."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import structlog

from gateway.bridge.link import BrokerLink, create_link
from gateway.coap.server import CoapServer, run_coap_server
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.delivery.uplink import SpoolingLink
from gateway.errors import GatewayError
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import Address
from gateway.persistence.sessions import SessionStore
from gateway.pipeline.decide import Decider
from gateway.pipeline.ingest import Pipeline
from gateway.recognizer.service import LocalRecognizer, OccupancyRecognizer
from gateway.router import MqttSnRouter
from gateway.rules.engine import RuleEngine
from gateway.rules.loader import load_rules
from gateway.spool import DEFAULT_FILENAME as SPOOL_FILENAME
from gateway.spool import Spool
from gateway.transport.udp import open_mqttsn_endpoint

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE = 5.0


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel every service at once."""


class Gateway:
    """A running gateway. `run()` returns after `stop()` once every service has ended."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.mqttsn_address: Address | None = None
        self.core: GatewayCore | None = None
        self.router: MqttSnRouter | None = None
        self.bus: MessageBus | None = None
        self.pipeline: Pipeline | None = None
        self.coap: CoapServer | None = None
        self._closers: list[Callable[[], None]] = []

    def stop(self) -> None:
        self._stop.set()

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
            self.mqttsn_address = transport.get_extra_info("sockname")
            log.info("mqttsn_listening", addr=_format(self.mqttsn_address),
                     broker=settings.broker.url or None)
            async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as tg:
                tg.create_task(bus.link.run(), name="broker-link")
                tg.create_task(self._flush_sessions(core, store), name="session-flusher")
                for recognizer in recognizers:
                    tg.create_task(recognizer.run(), name=f"recognizer-{type(recognizer).__name__}")
                coap_ready = asyncio.Event()
                tg.create_task(
                    run_coap_server(settings, bus, pipeline, coap_ready,
                                    on_started=self._coap_started),
                    name="coap-server",
                )
                await coap_ready.wait()  # a busy port fails the group with CoapPortInUse
                self.ready.set()
                log.info("gateway_ready", site=settings.site)
                await self._stop.wait()
                log.info("gateway_stopping")
                deadline.reschedule(loop.time() + SHUTDOWN_GRACE)
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
        )
        restored = core.restore(await asyncio.to_thread(store.load_all), now)
        log.info("sessions_restored", count=restored)
        self.core = core
        bus = MessageBus()
        bus.link = await self._uplink(create_link(settings, bus.on_broker_message))
        self.bus = bus
        engine = RuleEngine(load_rules(settings.rules.path))
        recognizers: list[LocalRecognizer | OccupancyRecognizer] = []
        text = occupancy = None
        if settings.recognizer.enabled:
            text = await LocalRecognizer.load(settings.recognizer)
            occupancy = await OccupancyRecognizer.load(settings.recognizer)
            recognizers = [text, occupancy]
        self.pipeline = Pipeline(bus, Decider(engine, bus, self.gateway_id), text, occupancy)
        return core, bus, self.pipeline, recognizers

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
        return SpoolingLink(link, spool, gateway_id=self.gateway_id,
                            replay_rate=cfg.replay_rate, replay_burst=cfg.replay_burst)

    def _coap_started(self, server: CoapServer) -> None:
        self.coap = server

    async def _flush_sessions(self, core: GatewayCore, store: SessionStore) -> None:
        interval = self.settings.mqttsn.session_flush_interval
        while True:
            await asyncio.sleep(interval)
            changes = core.take_dirty()
            if changes:
                await asyncio.to_thread(store.apply, changes)


def _format(addr: Address | None) -> str:
    return "" if addr is None else f"{addr[0]}:{addr[1]}"


async def run(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, then stop every service within the grace period."""
    gateway = Gateway(settings)
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
