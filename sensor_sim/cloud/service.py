"""The reference cloud recogniser service: MQTT v5 requests in, answers on each response topic.

One gmqtt connection (MQTT v5, clean start) subscribed to the request topic. For each request it
parses a `CloudRequest`, runs the model on the event loop (a fraction of a millisecond per
utterance: this is a reference, not a scalable service) and publishes a `CloudResponse` at QoS
0 on the request's response topic with the request's correlation data. A request without a
response topic cannot be answered and is counted. After a lost connection it reconnects every
``RECONNECT_DELAY`` seconds until stopped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gmqtt
import structlog
from gmqtt.mqtt.constants import MQTTv50
from pydantic import ValidationError

from gateway.recognizer.text_model import TextIntentModel
from schemas.cloud import CloudConfig, CloudRequest, CloudResponse

__all__ = ["DEFAULT_MODEL", "DEFAULT_REQUEST_TOPIC", "CloudService"]

log = structlog.get_logger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "intent_cloud.manifest.json"
DEFAULT_REQUEST_TOPIC: str = CloudConfig.model_fields["request_topic"].default
RECONNECT_DELAY = 0.5


class _Client(gmqtt.Client):  # type: ignore[misc]  # gmqtt is untyped
    async def reconnect(self, delay: bool = False) -> None:
        """Disabled: `CloudService.run` reconnects with a fresh client."""


class CloudService:
    """Answers recognize and heartbeat requests with ``model``."""

    def __init__(
        self,
        model: TextIntentModel,
        *,
        broker_url: str,
        request_topic: str = DEFAULT_REQUEST_TOPIC,
        client_id: str = "",
        delay_ms: float = 0.0,
    ) -> None:
        url = urlsplit(broker_url)
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise ValueError(f"broker url must be mqtt://host:port, got {broker_url!r}")
        self.model = model
        self._host = url.hostname
        self._tls = url.scheme == "mqtts"
        self._port = url.port or (8883 if self._tls else 1883)
        self.request_topic = request_topic
        self._client_id = client_id or f"cloud-recognizer-{model.version}"
        self._delay = delay_ms / 1000.0
        self.counters: Counter[str] = Counter()

    @classmethod
    def load(cls, model_path: Path | None = None, **options: Any) -> CloudService:
        return cls(TextIntentModel.load(model_path or DEFAULT_MODEL), **options)

    def answer(self, payload: bytes) -> CloudResponse:
        """The response to one request payload (pure: no I/O)."""
        try:
            request = CloudRequest.model_validate_json(payload)
        except ValidationError as exc:
            self.counters["malformed"] += 1
            return CloudResponse(kind="recognize", ok=False, model_version=self.model.version,
                                 error=f"invalid request: {exc.errors()[0]['msg']}")
        self.counters[request.kind] += 1
        if request.kind == "heartbeat" or request.text is None:
            return CloudResponse(kind="heartbeat", ok=True, model_version=self.model.version)
        (intent,) = self.model.predict([request.text])
        return CloudResponse(
            kind="recognize", ok=True, model_version=self.model.version, intent=intent
        )

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Serve until cancelled; ``ready`` is set once the first subscription is in place."""
        while True:
            lost = asyncio.Event()
            client = self._client(lost, ready)
            try:
                await client.connect(self._host, self._port, ssl=self._tls, keepalive=30,
                                     version=MQTTv50)
            except (OSError, gmqtt.MQTTConnectError) as exc:
                log.warning("cloud_connect_failed", host=self._host, port=self._port,
                            error=str(exc))
                await asyncio.sleep(RECONNECT_DELAY)
                continue
            log.info("cloud_connected", host=self._host, port=self._port,
                     request_topic=self.request_topic, model=self.model.version)
            try:
                await lost.wait()
            finally:
                await _close(client)
            log.warning("cloud_connection_lost", host=self._host, port=self._port)
            await asyncio.sleep(RECONNECT_DELAY)

    def _client(self, lost: asyncio.Event, ready: asyncio.Event | None) -> Any:
        client = _Client(self._client_id, clean_session=True)

        def on_connect(*_: Any) -> None:
            client.subscribe(gmqtt.Subscription(self.request_topic, qos=0))

        def on_subscribe(*_: Any) -> None:
            log.info("cloud_subscribed", request_topic=self.request_topic)
            if ready is not None:
                ready.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = lambda _c, _t, payload, _q, properties: self._on_request(
            client, bytes(payload), properties
        )
        client.on_disconnect = lambda *_: lost.set()
        return client

    def _on_request(self, client: Any, payload: bytes, properties: dict[str, Any]) -> None:
        response_topic = (properties.get("response_topic") or [None])[0]
        correlation = (properties.get("correlation_data") or [b""])[0]
        if not response_topic:
            self.counters["no_response_topic"] += 1
            return
        body = self.answer(payload).model_dump_json(exclude_none=True).encode()

        def send() -> None:
            try:
                client.publish(response_topic, body, qos=0, correlation_data=correlation)
            except Exception as exc:  # the connection went away meanwhile
                self.counters["send_failed"] += 1
                log.debug("cloud_send_failed", error=repr(exc))

        if self._delay > 0:
            asyncio.get_running_loop().call_later(self._delay, send)
        else:
            send()


async def _close(client: Any) -> None:
    try:
        await client.disconnect()
    except Exception as exc:  # the connection may already be gone in many ways
        log.debug("cloud_close_error", error=repr(exc))
