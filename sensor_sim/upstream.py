"""`--broker URL`: count what the gateway bridged upstream, as the back office sees it.

One MQTT connection (gmqtt, MQTT 3.1.1) subscribes at QoS 1 to `{mountpoint}decisions/#` and
`{mountpoint}actuators/+/set` and counts the messages (`upstream.decisions`,
`upstream.actuator_commands` in the report). Telemetry is not subscribed: at benchmark rates
counting it would cost the simulator more than the rest of its work.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import gmqtt
from gmqtt.mqtt.constants import MQTTv311

CONNECT_TIMEOUT = 5.0


class UpstreamError(Exception):
    """The broker cannot be reached or refused the subscription."""


class UpstreamWatcher:
    def __init__(self, url: str, mountpoint: str, counts: Counter[str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise UpstreamError(f"broker url {url!r}: expected mqtt://host[:port] or mqtts://")
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.tls: ssl.SSLContext | bool = (
            ssl.create_default_context() if parts.scheme == "mqtts" else False
        )
        self.mountpoint = mountpoint
        self.counts = counts
        self._decisions = f"{mountpoint}decisions/"
        self._subscribed = asyncio.Event()
        client = gmqtt.Client(f"sensor-sim-{uuid.uuid4().hex[:12]}", clean_session=True)
        if parts.username:
            client.set_auth_credentials(parts.username, parts.password)
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        self._client: Any = client
        self._closing = False

    @property
    def filters(self) -> list[str]:
        return [f"{self.mountpoint}decisions/#", f"{self.mountpoint}actuators/+/set"]

    async def start(self) -> None:
        """Connect and subscribe; UpstreamError when that fails within CONNECT_TIMEOUT."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self._client.connect(self.host, self.port, ssl=self.tls, keepalive=30,
                                           version=MQTTv311, raise_exc=True)
                self._client.reconnect_retries = 0
                for topic_filter in self.filters:
                    self._client.subscribe(topic_filter, qos=1)
                await self._subscribed.wait()
        except (OSError, TimeoutError, gmqtt.MQTTConnectError) as exc:
            await self.stop()
            raise UpstreamError(f"broker {self.host}:{self.port}: {exc!r}") from exc

    async def stop(self) -> None:
        self._closing = True
        if self._client.is_connected:
            await self._client.disconnect()
        for _ in range(10):  # gmqtt's own short-lived tasks finish within a few loop turns
            await asyncio.sleep(0)

    def _on_message(self, _client: Any, topic: str, _payload: bytes, _qos: int,
                    _properties: Any) -> int:
        kind = "decisions" if topic.startswith(self._decisions) else "actuator_commands"
        self.counts[kind] += 1
        return 0

    def _on_subscribe(self, _client: Any, _mid: int, _codes: Any, *_props: Any) -> None:
        self.counts["subacks"] += 1
        if self.counts["subacks"] >= len(self.filters):
            self._subscribed.set()

    def _on_disconnect(self, _client: Any, _packet: Any, _exc: Any = None) -> None:
        if not self._closing:
            self.counts["disconnects"] += 1
