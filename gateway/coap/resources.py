"""The general path's resource tree (aiocoap resources): everything the fast path declines.

| Path | Methods |
| --- | --- |
| ``/devices/{id}/telemetry``, ``/devices/{id}/command`` | POST (block-wise and any option) |
| ``/actuators/{id}/set`` | GET (+Observe: bus messages become CON notifications), POST |
| ``/ps/{topic...}`` | POST publishes to ``{topic}``; GET (+Observe) subscribes; ``+``, ``#`` ok |
| ``/ps`` | GET: link-format of the observed topic filters |
| ``/time`` | GET: the gateway clock, CBOR (default) or JSON by Accept |
| ``/.well-known/core`` | GET: RFC 6690 link-format |

An observation is a bus subscription held by the render task of its request: the task sends
each bus message into the request's pipe as a notification and unsubscribes in ``finally``
when aiocoap cancels it (RST, retransmissions exhausted, deregistration, a new request on the
same token, shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, Final
from urllib.parse import quote

import cbor2
import structlog
from aiocoap import Message as AioMessage
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning
from aiocoap.resource import PathCapable, Resource, Site, WKCResource
from aiocoap.util.linkformat import Link, LinkFormat

from gateway.coap.fastpath import Kind
from gateway.coap.general import GeneralPath
from gateway.coap.handler import DeviceIngest, Outcome
from gateway.delivery.bus import MessageBus, Subscription
from gateway.errors import BrokerUnavailable
from gateway.pipeline.normalise import CF_CBOR, CF_JSON, CF_SENML_CBOR, CF_SENML_JSON, CF_TEXT
from gateway.topics import validate_filter, validate_topic
from schemas.config import CoapConfig

__all__ = ["CoapSite", "SiteState"]

log = structlog.get_logger(__name__)

CF_LINK_FORMAT: Final = 40
OBSERVE_SEQUENCE_MODULUS: Final = 1 << 24  # RFC 7641 §4.4: 24-bit sequence numbers
SEEN_ACTUATORS: Final = 128
_KINDS: Final[dict[str, Kind]] = {"telemetry": "telemetry", "command": "command"}
_TELEMETRY_CT: Final = f"{CF_SENML_CBOR} {CF_SENML_JSON} {CF_CBOR} {CF_JSON}"
_COMMAND_CT: Final = f"{CF_TEXT} {CF_JSON} {CF_CBOR}"


def _response(outcome: Outcome) -> Any:
    message = AioMessage(code=Code(outcome.code), payload=outcome.payload)
    if outcome.content_format is not None:
        message.opt.content_format = outcome.content_format
    if outcome.max_age is not None:
        message.opt.max_age = outcome.max_age
    if outcome.size1 is not None:
        message.opt.size1 = outcome.size1
    return message


def _count_response(counters: Counter[str], event: Any) -> bool:
    """Pipe listener: count the first response to a request by its code (not notifications)."""
    if event.message is not None:
        counters[f"general_response_{int(event.message.code)}"] += 1
    return False


def _error(code: Code, diagnostic: str = "") -> Any:
    return AioMessage(code=code, payload=diagnostic.encode())


def _segment(text: str) -> str:
    return quote(text, safe="")


class SiteState:
    """What the resources share: bus, ingest, limits, counters and the observer registry."""

    def __init__(
        self,
        config: CoapConfig,
        bus: MessageBus,
        ingest: DeviceIngest,
        general: GeneralPath,
        counters: Counter[str],
    ) -> None:
        self.config = config
        self.bus = bus
        self.ingest = ingest
        self.general = general
        self.counters = counters
        self.observers = 0
        self.observed: Counter[str] = Counter()  # topic filter -> observations
        self.seen_actuators: dict[str, None] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._sequence = 0
        tuning = type(
            "NotificationTuning",
            (TransportTuning,),
            {
                "reliability": True,
                "ACK_TIMEOUT": config.notify_ack_timeout,
                "MAX_RETRANSMIT": config.notify_max_retransmit,
            },
        )
        self.notification_tuning = tuning()

    def next_observe_sequence(self) -> int:
        """One increasing sequence for every notification of this server (RFC 7641 §4.4), so
        that a client re-registering on the same token never sees numbers go backwards."""
        self._sequence = (self._sequence + 1) % OBSERVE_SEQUENCE_MODULUS
        return self._sequence

    def saw_actuator(self, actuator_id: str) -> None:
        seen = self.seen_actuators
        if actuator_id not in seen:
            seen[actuator_id] = None
            if len(seen) > SEEN_ACTUATORS:
                del seen[next(iter(seen))]

    def answer(self, outcome: Outcome) -> Any:
        """The response to a DeviceIngest outcome on this path, counted by code: the metrics
        endpoint tells these apart from the fast path's (DeviceIngest counts both)."""
        self.counters[f"general_ingest_{outcome.code}"] += 1
        return _response(outcome)

    async def publish(self, topic: str, payload: bytes) -> Any:
        """POST to a bus topic: 2.04 once the broker has it (at once without a broker)."""
        if len(payload) > self.config.max_payload:
            return self.answer(self.ingest.too_large(len(payload)))
        try:
            validate_topic(topic)
            future = self.bus.publish(topic, payload, qos=1)
        except ValueError as exc:
            self.counters["publish_bad_topic"] += 1
            return _error(Code.BAD_REQUEST, str(exc)[:100])
        except BrokerUnavailable:
            self.counters["publish_broker_unavailable"] += 1
            return self._unavailable()
        if future is not None:
            future.add_done_callback(_consume)
            try:
                await asyncio.wait_for(asyncio.shield(future), self.config.publish_timeout)
            except TimeoutError:
                self.counters["publish_timeout"] += 1
                return _error(Code.GATEWAY_TIMEOUT, "broker did not acknowledge in time")
            except BrokerUnavailable:
                self.counters["publish_broker_unavailable"] += 1
                return self._unavailable()
        self.counters["publish_ok"] += 1
        return AioMessage(code=Code.CHANGED)

    def _unavailable(self) -> Any:
        message = _error(Code.SERVICE_UNAVAILABLE, "broker unavailable")
        message.opt.max_age = self.config.overload_max_age
        return message

    async def observe(self, pipe: Any, topic_filter: str) -> None:
        """Serve one observation of `topic_filter` until aiocoap cancels this task."""
        request = pipe.request
        counters = self.counters
        if self.observers >= self.config.max_observers:
            # RFC 7641 §4.1: a server that cannot add the observer answers without Observe.
            counters["observe_refused_limit"] += 1
            pipe.add_response(AioMessage(code=Code.CONTENT), is_last=True)
            return
        addr = request.remote.sockaddr
        general = self.general
        max_pending = self.config.max_pending_notifications
        tuning = self.notification_tuning
        ended = False

        def on_end() -> None:
            nonlocal ended
            ended = True

        def notify(_topic: str, payload: bytes, _qos: int, _retain: bool) -> None:
            if ended:
                return
            if general.pending_to(addr) >= max_pending:
                counters["notify_dropped_backlog"] += 1
                return
            notification = AioMessage(
                code=Code.CONTENT, payload=payload, transport_tuning=tuning
            )
            notification.opt.observe = self.next_observe_sequence()
            counters["notifications"] += 1
            pipe.add_response(notification, is_last=False)

        try:
            subscription: Subscription = self.bus.subscribe(topic_filter, notify, qos=1)
        except ValueError as exc:
            counters["observe_bad_filter"] += 1
            pipe.add_response(_error(Code.BAD_REQUEST, str(exc)[:100]), is_last=True)
            return
        self.observers += 1
        self.observed[topic_filter] += 1
        counters["observe_registered"] += 1
        log.info("coap_observe_registered", remote=request.remote.hostinfo, topic=topic_filter)
        try:
            pipe.on_interest_end(on_end)
            first = AioMessage(code=Code.CONTENT)
            first.opt.observe = self.next_observe_sequence()
            pipe.add_response(first, is_last=False)
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            ended = True
            self.bus.unsubscribe(subscription)
            self.observers -= 1
            self.observed[topic_filter] -= 1
            if self.observed[topic_filter] <= 0:
                del self.observed[topic_filter]
            counters["observe_removed"] += 1
            log.info("coap_observe_removed", remote=request.remote.hostinfo, topic=topic_filter)


def _consume(future: asyncio.Future[None]) -> None:
    """Retrieve a publish future's outcome so that a late failure is not reported as lost."""
    if not future.cancelled():
        future.exception()


class _Devices(Resource, PathCapable):  # type: ignore[misc]
    """``/devices/{id}/telemetry|command``: what the fast path declined (block-wise, options)."""

    def __init__(self, state: SiteState) -> None:
        super().__init__()
        self._state = state

    async def needs_blockwise_assembly(self, request: Any) -> bool:
        return True

    def _route(self, request: Any) -> tuple[str, Kind] | None:
        path = request.opt.uri_path
        if len(path) != 2 or path[1] not in _KINDS:
            return None
        return path[0], _KINDS[path[1]]

    async def render_to_pipe(self, pipe: Any) -> None:
        request = pipe.request
        block1 = request.opt.block1
        if block1 is not None and self._route(request) is not None:
            declared = request.opt.size1 or 0
            received = block1.start + len(request.payload)
            limit = self._state.config.max_payload
            if declared > limit or received > limit:
                # RFC 7959 §2.9.3 / §4: refuse the whole transfer, Size1 tells the limit.
                self._state.counters["block1_too_large"] += 1
                pipe.add_response(
                    self._state.answer(self._state.ingest.too_large(max(declared, received))),
                    is_last=True,
                )
                return
        await super().render_to_pipe(pipe)

    async def render(self, request: Any) -> Any:
        route = self._route(request)
        if route is None:
            return _error(Code.NOT_FOUND)
        if request.code != Code.POST:
            return _error(Code.METHOD_NOT_ALLOWED)
        accept = request.opt.accept
        if accept is not None and int(accept) not in (CF_CBOR, CF_JSON):
            return _error(Code.NOT_ACCEPTABLE, "accept 60 (CBOR) or 50 (JSON)")
        device_id, kind = route
        answer = self._state.ingest.handle(
            kind, device_id, request.payload, _content_format(request)
        )
        # A later answer: aiocoap sends the empty ACK and then a separate response itself.
        outcome = answer if isinstance(answer, Outcome) else await answer.outcome
        response = self._state.answer(outcome)
        if accept is not None and int(accept) == CF_JSON and outcome.content_format == CF_CBOR:
            # RFC 7252 §5.10.4: the summary in the representation the client asked for.
            response.payload = json.dumps(cbor2.loads(outcome.payload)).encode()
            response.opt.content_format = CF_JSON
        return response

    def get_resources_as_linkheader(self) -> LinkFormat:
        links = []
        for device_id in self._state.ingest.seen_devices:
            href = "/" + _segment(device_id)
            links.append(Link(href + "/telemetry", rt="egw.telemetry", ct=_TELEMETRY_CT))
            links.append(Link(href + "/command", rt="egw.command", ct=_COMMAND_CT))
        return LinkFormat(links)


def _content_format(request: Any) -> int | None:
    value = request.opt.content_format
    return None if value is None else int(value)


class _Actuators(Resource, PathCapable):  # type: ignore[misc]
    """``/actuators/{id}/set``: observe to receive its commands, POST to publish one."""

    def __init__(self, state: SiteState) -> None:
        super().__init__()
        self._state = state

    async def needs_blockwise_assembly(self, request: Any) -> bool:
        return True

    def _actuator(self, request: Any) -> str | None:
        path = request.opt.uri_path
        if len(path) != 2 or path[1] != "set" or not path[0]:
            return None
        return str(path[0])

    async def render_to_pipe(self, pipe: Any) -> None:
        request = pipe.request
        actuator_id = self._actuator(request)
        if actuator_id is None:
            pipe.add_response(_error(Code.NOT_FOUND), is_last=True)
            return
        if request.code == Code.GET and request.opt.observe == 0:
            self._state.saw_actuator(actuator_id)
            await self._state.observe(pipe, f"actuators/{actuator_id}/set")
            return
        await super().render_to_pipe(pipe)

    async def render(self, request: Any) -> Any:
        actuator_id = self._actuator(request)
        if actuator_id is None:
            return _error(Code.NOT_FOUND)
        if request.code == Code.GET:
            return AioMessage(code=Code.CONTENT)
        if request.code == Code.POST:
            self._state.saw_actuator(actuator_id)
            return await self._state.publish(f"actuators/{actuator_id}/set", request.payload)
        return _error(Code.METHOD_NOT_ALLOWED)

    def get_resources_as_linkheader(self) -> LinkFormat:
        return LinkFormat(
            [
                Link(f"/{_segment(actuator_id)}/set", rt="egw.actuator", obs=None)
                for actuator_id in self._state.seen_actuators
            ]
        )


class _PubSubTopics(Resource, PathCapable):  # type: ignore[misc]
    """``/ps/{topic...}``: POST publishes the raw payload, GET+Observe subscribes."""

    def __init__(self, state: SiteState) -> None:
        super().__init__()
        self._state = state

    async def needs_blockwise_assembly(self, request: Any) -> bool:
        return True

    async def render_to_pipe(self, pipe: Any) -> None:
        request = pipe.request
        if request.code == Code.GET and request.opt.observe == 0:
            topic_filter = "/".join(request.opt.uri_path)
            try:
                validate_filter(topic_filter)
            except ValueError as exc:
                self._state.counters["observe_bad_filter"] += 1
                pipe.add_response(_error(Code.BAD_REQUEST, str(exc)[:100]), is_last=True)
                return
            await self._state.observe(pipe, topic_filter)
            return
        await super().render_to_pipe(pipe)

    async def render(self, request: Any) -> Any:
        topic = "/".join(request.opt.uri_path)
        if request.code == Code.GET:
            try:
                validate_filter(topic)
            except ValueError as exc:
                return _error(Code.BAD_REQUEST, str(exc)[:100])
            return AioMessage(code=Code.CONTENT)
        if request.code == Code.POST:
            return await self._state.publish(topic, request.payload)
        return _error(Code.METHOD_NOT_ALLOWED)

    def get_resources_as_linkheader(self) -> LinkFormat:
        return LinkFormat([])  # the topics are listed by GET /ps, not in /.well-known/core


class _PubSubCollection(Resource):  # type: ignore[misc]
    """``/ps``: the pub/sub function set (rt="core.ps"); GET lists the observed filters."""

    ct = CF_LINK_FORMAT
    rt = "core.ps"

    def __init__(self, state: SiteState) -> None:
        super().__init__()
        self._state = state

    async def render_get(self, request: Any) -> Any:
        links = [
            Link("/ps/" + "/".join(_segment(level) for level in topic_filter.split("/")), obs=None)
            for topic_filter in sorted(self._state.observed)
        ]
        return AioMessage(
            payload=str(LinkFormat(links)).encode(), content_format=CF_LINK_FORMAT
        )


class _Time(Resource):  # type: ignore[misc]
    """``/time``: the gateway clock as epoch seconds (float), CBOR by default or JSON."""

    ct = f"{CF_CBOR} {CF_JSON}"
    rt = "egw.time"

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._clock = clock

    async def render_get(self, request: Any) -> Any:
        accept = request.opt.accept
        now = self._clock()
        if accept is None or int(accept) == CF_CBOR:
            payload, content_format = cbor2.dumps(now), CF_CBOR
        elif int(accept) == CF_JSON:
            payload, content_format = json.dumps(now).encode(), CF_JSON
        else:
            return _error(Code.NOT_ACCEPTABLE, "accept 60 (CBOR) or 50 (JSON)")
        return AioMessage(payload=payload, content_format=content_format, max_age=0)


class CoapSite(Site):  # type: ignore[misc]
    """The root: routes by path; every render task is tracked so that close() can await it."""

    def __init__(self, state: SiteState, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._state = state
        self.add_resource(
            [".well-known", "core"],
            WKCResource(self.get_resources_as_linkheader, impl_info=None),
        )
        self.add_resource(["time"], _Time(clock))
        self.add_resource(["devices"], _Devices(state))
        self.add_resource(["actuators"], _Actuators(state))
        self.add_resource(["ps"], _PubSubCollection(state))
        self.add_resource(["ps"], _PubSubTopics(state))

    async def render_to_pipe(self, pipe: Any) -> None:
        task = asyncio.current_task()
        tasks = self._state.tasks
        if task is not None:
            tasks.add(task)
        with contextlib.suppress(AttributeError):  # aiocoap: the pipe has already ended
            pipe.on_event(partial(_count_response, self._state.counters), is_interest=False)
        try:
            await super().render_to_pipe(pipe)
        finally:
            if task is not None:
                tasks.discard(task)
