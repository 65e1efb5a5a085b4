"""The [coap] settings section: defaults and the public EGW_COAP__* environment names."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from gateway.config import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No EGW_ variable of the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("EGW_"):
            monkeypatch.delenv(name)
    yield


def test_coap_defaults() -> None:
    """CoAP listens on 0.0.0.0:5683 and accepts bodies of up to 64 KiB by default."""
    coap = load_settings().coap
    assert (coap.host, coap.port, coap.max_payload) == ("0.0.0.0", 5683, 65536)
    assert coap.exchange_lifetime == 247.0  # RFC 7252 §4.8.2 EXCHANGE_LIFETIME
    assert coap.notify_ack_timeout == 2.0 and coap.notify_max_retransmit == 4  # §4.8


def test_public_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """EGW_COAP__HOST, EGW_COAP__PORT and EGW_COAP__MAX_PAYLOAD are the contract."""
    monkeypatch.setenv("EGW_COAP__HOST", "127.0.0.1")
    monkeypatch.setenv("EGW_COAP__PORT", "5690")
    monkeypatch.setenv("EGW_COAP__MAX_PAYLOAD", "2048")
    coap = load_settings().coap
    assert (coap.host, coap.port, coap.max_payload) == ("127.0.0.1", 5690, 2048)


@pytest.mark.parametrize(
    ("name", "value"),
    [("EGW_COAP__PORT", "70000"), ("EGW_COAP__MAX_PAYLOAD", "0"), ("EGW_COAP__FOO", "1")],
)
def test_invalid_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Out-of-range values and unknown keys are validation errors."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        load_settings()
