"""Wire-contract models: validation rules, immutability, strictness and JSON round trips."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import schemas
from schemas import (
    ActuatorCommand,
    CoapSummary,
    Decision,
    GatewayStatus,
    Intent,
    Reading,
    TelemetryBatch,
    TextCommand,
)


def reading(**overrides: Any) -> Reading:
    fields: dict[str, Any] = {"device_id": "dev-1", "name": "temp", "value": 21.5, "time": 1e9}
    fields.update(overrides)
    return Reading(**fields)


def batch(**overrides: Any) -> TelemetryBatch:
    fields: dict[str, Any] = {
        "device_id": "dev-1",
        "readings": [reading()],
        "received_at": 1e9,
        "source": "coap",
        "content_format": 112,
    }
    fields.update(overrides)
    return TelemetryBatch(**fields)


def decision(**overrides: Any) -> Decision:
    fields: dict[str, Any] = {
        "device_id": "dev-1",
        "intent": Intent(name="lights_off", confidence=0.93, slots={"room": "kitchen"}),
        "actions": [
            ActuatorCommand(
                actuator_id="lamp-3", command={"state": "off"}, issued_at=1e9, decision_seq=7
            )
        ],
        "recognizer": "local",
        "model_version": "intent-2024.06",
        "gateway_id": "gw-7",
        "seq": 7,
        "gateway_time": 1e9,
    }
    fields.update(overrides)
    return Decision(**fields)


EXAMPLES: list[BaseModel] = [
    reading(),
    reading(value=None, string_value="Machine Room", unit=None),
    reading(value=None, bool_value=False),
    reading(value=None, data_value="aGkgCg"),
    reading(value=None, sum=1234.5, unit="Ah"),
    batch(),
    batch(source="mqttsn", content_format=None),
    TextCommand(device_id="dev-1", text="turn off the light", received_at=1e9, source="mqttsn"),
    Intent(name="lights_off", confidence=1.0),
    ActuatorCommand(actuator_id="lamp-3", command={"state": "off", "level": 0}, issued_at=1e9),
    decision(),
    decision(actions=[]),
    CoapSummary(accepted=3),
    CoapSummary(accepted=1, intent="lights_off", actions=decision().actions),
    GatewayStatus(state="online", site="plant7", reason="startup", time=1e9),
    GatewayStatus(state="offline", site="plant7", reason="will"),
]


@pytest.mark.parametrize("model", EXAMPLES, ids=lambda model: type(model).__name__)
def test_json_round_trip(model: BaseModel) -> None:
    """Every model survives model_dump_json -> model_validate_json unchanged."""
    assert type(model).model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize("model", EXAMPLES, ids=lambda model: type(model).__name__)
def test_extra_keys_are_forbidden(model: BaseModel) -> None:
    """An unknown key in the input is refused by every model."""
    data = model.model_dump(mode="json")
    data["unexpected"] = 1
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        type(model).model_validate(data)


@pytest.mark.parametrize("model", EXAMPLES, ids=lambda model: type(model).__name__)
def test_models_are_frozen(model: BaseModel) -> None:
    """Assigning to a field of any model raises."""
    name = next(iter(type(model).model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(model, name, getattr(model, name))


def test_reading_needs_a_value_or_a_sum() -> None:
    """A reading with neither a value field nor a sum is refused."""
    with pytest.raises(ValidationError, match="needs a value field, or a sum"):
        reading(value=None)


@pytest.mark.parametrize(
    "extra",
    [{"string_value": "x"}, {"bool_value": True}, {"data_value": "AA"}],
)
def test_reading_refuses_two_value_fields(extra: dict[str, Any]) -> None:
    """A reading with two value fields is refused."""
    with pytest.raises(ValidationError, match="exactly one value field"):
        reading(**extra)


def test_reading_with_sum_only_or_value_and_sum() -> None:
    """A sum may stand alone (RFC 8428 §4.2) or accompany a value."""
    assert reading(value=None, sum=3.0).sum == 3.0
    assert reading(sum=3.0).value == 21.5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "-temp"),
        ("name", "temp reading"),
        ("name", "t" * 257),
        ("device_id", ""),
        ("device_id", "a/b"),
        ("device_id", "d" * 65),
        ("data_value", "aGk="),
        ("data_value", "a+b/"),
        ("unit", "u" * 65),
    ],
)
def test_reading_field_rules(field: str, value: str) -> None:
    """Names follow RFC 8428 §4.5.1, device ids their pattern, data values base64url."""
    with pytest.raises(ValidationError):
        reading(**{field: value})


@pytest.mark.parametrize("value", ["21.5", True, float("nan"), float("inf")])
def test_numbers_are_strict_and_finite(value: Any) -> None:
    """Numeric fields take only real finite numbers: no strings, booleans, NaN or infinities."""
    with pytest.raises(ValidationError):
        reading(value=value)


def test_integers_are_accepted_as_floats() -> None:
    """An integer value is a valid float field and is kept as a float."""
    assert reading(value=3).value == 3.0


def test_batch_rules() -> None:
    """A batch has at least one reading, all of its own device, and a uint16 content-format."""
    with pytest.raises(ValidationError):
        batch(readings=[])
    with pytest.raises(ValidationError, match="belongs to the batch's device"):
        batch(readings=[reading(device_id="other")])
    with pytest.raises(ValidationError):
        batch(content_format=65536)
    with pytest.raises(ValidationError):
        batch(source="http")


def test_text_command_is_stripped_and_bounded() -> None:
    """Command text is stripped and must then be 1-512 characters."""
    command = TextCommand(device_id="d", text="  lights off \n", received_at=0.0, source="coap")
    assert command.text == "lights off"
    TextCommand(device_id="d", text="x" * 512, received_at=0.0, source="coap")
    for text in ["", "   \t", "x" * 513]:
        with pytest.raises(ValidationError):
            TextCommand(device_id="d", text=text, received_at=0.0, source="coap")


def test_intent_confidence_bounds() -> None:
    """Confidence is within 0..1 and the intent name is not empty."""
    for confidence in [-0.01, 1.01]:
        with pytest.raises(ValidationError):
            Intent(name="x", confidence=confidence)
    with pytest.raises(ValidationError):
        Intent(name="", confidence=0.5)
    assert Intent(name="x", confidence=0.0).slots == {}


def test_decision_sequence_numbers_are_not_negative() -> None:
    """Decision.seq and ActuatorCommand.decision_seq are >= 0."""
    with pytest.raises(ValidationError):
        decision(seq=-1)
    with pytest.raises(ValidationError):
        ActuatorCommand(actuator_id="a", command={}, issued_at=0.0, decision_seq=-1)


def test_nested_models_from_plain_data() -> None:
    """A decision validates from plain JSON-shaped data, nested models included."""
    data = decision().model_dump(mode="json")
    assert Decision.model_validate(data) == decision()


def test_gateway_status_states() -> None:
    """Only online, offline and degraded are states; time defaults to null."""
    assert GatewayStatus(state="degraded", site="s", reason="cloud down").time is None
    with pytest.raises(ValidationError):
        GatewayStatus(state="starting", site="s", reason="")  # type: ignore[arg-type]


def test_coap_summary_is_compact() -> None:
    """A CoAP summary has only accepted, intent and actions, with empty defaults."""
    summary = CoapSummary(accepted=2)
    assert summary.model_dump() == {"accepted": 2, "intent": None, "actions": []}


def test_package_exports_config_and_contracts() -> None:
    """schemas re-exports the configuration sections and every wire contract."""
    for name in [
        "BrokerConfig",
        "LogConfig",
        "MqttSnConfig",
        "Reading",
        "TelemetryBatch",
        "TextCommand",
        "Intent",
        "ActuatorCommand",
        "Decision",
        "CoapSummary",
        "GatewayStatus",
    ]:
        assert name in schemas.__all__
        assert hasattr(schemas, name)
