"""Configuration sections. `gateway.config.Settings` composes them and reads file + environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MqttSnConfig(_Section):
    """The MQTT-SN v1.2 UDP front-end."""

    host: str = Field("0.0.0.0", description="Address the MQTT-SN UDP socket binds to.")
    port: int = Field(1884, ge=0, le=65535, description="UDP port of the MQTT-SN gateway.")
    gateway_id: int = Field(1, ge=0, le=255, description="GwId sent in ADVERTISE and GWINFO.")
    predefined_topics: dict[int, str] = Field(
        default_factory=dict,
        description='Predefined topic ids, topic id -> topic name, e.g. {"1":"sensors/predef"}.',
    )
    advertise_interval: int = Field(
        0, ge=0, le=65535, description="Seconds between ADVERTISE broadcasts; 0 = off."
    )
    advertise_address: str = Field(
        "255.255.255.255", description="Destination address of ADVERTISE broadcasts."
    )
    advertise_port: int = Field(
        0, ge=0, le=65535, description="Destination port of ADVERTISE; 0 = the gateway's port."
    )
    max_clients: int = Field(
        20000, ge=1, description="Client table size; beyond it CONNECT gets congestion."
    )
    max_buffered: int = Field(
        100, ge=1, description="Messages buffered per sleeping or congested client before dropping."
    )
    max_inflight: int = Field(
        16, ge=1, description="Gateway-to-client QoS 1/2 messages in flight per client."
    )
    retry_interval: float = Field(
        10.0, gt=0, description="Seconds before a gateway-to-client message is retried (Tretry)."
    )
    retry_count: int = Field(
        3, ge=0, description="Retries before a client is declared lost (Nretry)."
    )
    max_packet_size: int = Field(
        1400, ge=64, le=65535, description="Largest datagram accepted or sent, bytes."
    )
    rate_limit: float = Field(
        2000.0, gt=0, description="Datagrams per second allowed from one address (token bucket)."
    )
    rate_burst: int = Field(4000, ge=1, description="Burst size of the per-address token bucket.")
    session_flush_interval: float = Field(
        0.5, gt=0,
        description="Seconds between writes of changed client sessions to the data dir; a QoS 2 "
        "PUBREC waiting for its session to be stored makes the write happen at once.",
    )

    @field_validator("predefined_topics")
    @classmethod
    def _topic_ids_in_range(cls, value: dict[int, str]) -> dict[int, str]:
        for topic_id, name in value.items():
            if not 1 <= topic_id <= 0xFFFE:
                raise ValueError(f"predefined topic id {topic_id} is outside 1..65534")
            if not name or "+" in name or "#" in name:
                raise ValueError(f"predefined topic {topic_id} has an invalid name {name!r}")
        return value


class CoapConfig(_Section):
    """The CoAP (RFC 7252) UDP front-end."""

    host: str = Field("0.0.0.0", description="Address the CoAP UDP socket binds to.")
    port: int = Field(
        5683, ge=0, le=65535,
        description="UDP port of the CoAP server; a port already in use refuses to start.",
    )
    max_payload: int = Field(
        65536, ge=1,
        description="Largest request body in bytes, also reassembled Block1; over it: 4.13.",
    )
    max_observers: int = Field(
        1000, ge=0,
        description="Observe registrations held at once; beyond it GET answers without Observe.",
    )
    overload_max_age: int = Field(
        2, ge=0, le=0xFFFFFFFF,
        description="Max-Age (seconds) of a 5.03 sent when the CoAP front-end itself sheds load.",
    )
    slow_path_rate: float = Field(
        200.0, gt=0,
        description="Requests per second handed to the general (aiocoap) path (observe, "
        "block-wise, /ps/, ...); beyond: 5.03. Its memory is about 1 kB x rate x "
        "exchange_lifetime.",
    )
    slow_path_burst: int = Field(
        1000, ge=1, description="Burst size of the general path's token bucket."
    )
    dedup_capacity: int = Field(
        65536, ge=16,
        description="Message ids remembered for duplicate detection (RFC 7252 §4.5).",
    )
    exchange_lifetime: float = Field(
        247.0, gt=0,
        description="Seconds a message id is remembered for duplicates (EXCHANGE_LIFETIME), "
        "on both paths.",
    )
    notify_ack_timeout: float = Field(
        2.0, gt=0, description="ACK_TIMEOUT of confirmable Observe notifications, seconds."
    )
    notify_max_retransmit: int = Field(
        4, ge=0, le=10,
        description="Retransmissions of a notification before the observer is dropped.",
    )
    max_pending_notifications: int = Field(
        64, ge=1,
        description="Notifications queued for one observer address before newer ones drop.",
    )
    publish_timeout: float = Field(
        5.0, gt=0,
        description="Seconds a POST to /ps/ or actuators/ waits for the broker before 5.04.",
    )
    empty_ack_delay: float = Field(
        0.1, gt=0, le=1.5,
        description="Seconds a CON request waits for a late answer (a command being "
        "recognised) before an empty ACK; the answer then follows as a separate CON.",
    )


class BrokerConfig(_Section):
    """The one aggregated connection to an MQTT broker."""

    url: str = Field(
        "", description="mqtt://host:port or mqtts://host:port; empty = no broker, fully local."
    )
    username: str = Field("", description="Broker user name; empty = anonymous.")
    password: SecretStr = Field(SecretStr(""), description="Broker password.")
    mountpoint: str = Field(
        "edge/{site}/",
        description="Prefix added to every bridged topic; {site} is replaced; empty = unchanged.",
    )
    client_id: str = Field("", description="MQTT client id; empty = edge-gateway-{site}.")
    keepalive: int = Field(30, ge=5, le=65535, description="MQTT keep-alive, seconds.")
    reconnect_min: float = Field(0.5, gt=0, description="First reconnect delay, seconds.")
    reconnect_max: float = Field(30.0, gt=0, description="Largest reconnect delay, seconds.")
    max_pending: int = Field(
        10000, ge=1, description="QoS 1/2 publishes waiting for the broker before refusing more."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("broker url must start with mqtt:// or mqtts://")
        return value


class LogConfig(_Section):
    """Structured logging."""

    format: Literal["json", "console"] = Field("json", description="json lines or console.")
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level.")

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class RulesConfig(_Section):
    """The rules file: device registry and how intents and readings become commands."""

    path: Path | None = Field(
        None, description="TOML rules file; empty = the demo rules shipped in gateway/rules/."
    )


class RecognizerConfig(_Section):
    """The local text-intent recognizer (onnxruntime), micro-batched off the event loop."""

    enabled: bool = Field(True, description="Recognise text commands with the local model.")
    model_path: Path | None = Field(
        None, description="Model directory, manifest or .onnx file; empty = the packaged model."
    )
    confidence_threshold: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Below this confidence the intent is 'other'; empty = the model's own.",
    )
    batch_window_ms: float = Field(
        0.0, ge=0.0,
        description="How long a batch's first request waits for others to join it; 0 = a"
        " batch is what queued while the previous batches ran (uvloop's timers are whole"
        " milliseconds: a smaller window waits about 1 ms).",
    )
    max_batch: int = Field(64, ge=1, description="Largest batch handed to the model at once.")
    max_queue: int = Field(
        10000, ge=1, description="Requests waiting for the model before new ones are refused."
    )
    threads: int = Field(1, ge=1, description="onnxruntime intra-op threads per batch.")
    worker: Literal["process", "thread"] = Field(
        "process",
        description="Where text batches run: 'process' (a child process, restarted when it"
        " dies; a thread stands in while it starts) or 'thread' (inside the gateway process).",
    )
