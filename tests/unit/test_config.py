"""Settings: defaults, TOML file, EGW_ environment, precedence and validation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import Settings, load_settings
from gateway.configdoc import EXAMPLE_TOML


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove any EGW_ variable of the developer's shell so each test sees only its own."""
    for name in list(os.environ):
        if name.upper().startswith("EGW_"):
            monkeypatch.delenv(name)
    yield


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_contract() -> None:
    """With no file and no environment, every documented default applies."""
    settings = load_settings()
    assert settings.site == "site1"
    assert settings.data_dir == Path("./data")
    assert settings.mqttsn.host == "0.0.0.0"
    assert settings.mqttsn.port == 1884
    assert settings.mqttsn.gateway_id == 1
    assert settings.mqttsn.predefined_topics == {}
    assert settings.broker.url == ""
    assert settings.broker.mountpoint == "edge/{site}/"
    assert settings.mountpoint == "edge/site1/"
    assert settings.broker.password.get_secret_value() == ""
    assert settings.log.format == "json"
    assert settings.log.level == "info"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """EGW_ variables, with __ for nested sections, override the defaults."""
    monkeypatch.setenv("EGW_SITE", "plant7")
    monkeypatch.setenv("EGW_DATA_DIR", "/tmp/egw")
    monkeypatch.setenv("EGW_MQTTSN__PORT", "1999")
    monkeypatch.setenv("EGW_MQTTSN__GATEWAY_ID", "42")
    monkeypatch.setenv("EGW_BROKER__URL", "mqtts://broker.local:8883")
    monkeypatch.setenv("EGW_LOG__LEVEL", "DEBUG")
    settings = load_settings()
    assert settings.site == "plant7"
    assert settings.data_dir == Path("/tmp/egw")
    assert settings.mqttsn.port == 1999
    assert settings.mqttsn.gateway_id == 42
    assert settings.broker.url == "mqtts://broker.local:8883"
    assert settings.log.level == "debug"
    assert settings.mountpoint == "edge/plant7/"


def test_predefined_topics_from_a_json_object_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A JSON object in EGW_MQTTSN__PREDEFINED_TOPICS becomes an id -> name mapping."""
    monkeypatch.setenv("EGW_MQTTSN__PREDEFINED_TOPICS", '{"1":"sensors/predef","7":"a/b"}')
    settings = load_settings()
    assert settings.mqttsn.predefined_topics == {1: "sensors/predef", 7: "a/b"}


def test_toml_file_values(tmp_path: Path) -> None:
    """Values from the TOML file given as config_path are used."""
    path = write_toml(
        tmp_path,
        'site = "north"\n'
        "[mqttsn]\n"
        "port = 2000\n"
        'predefined_topics = { 3 = "x/y" }\n'
        "[broker]\n"
        'url = "mqtt://127.0.0.1:1883"\n'
        'mountpoint = ""\n',
    )
    settings = load_settings(path)
    assert settings.site == "north"
    assert settings.mqttsn.port == 2000
    assert settings.mqttsn.host == "0.0.0.0"
    assert settings.mqttsn.predefined_topics == {3: "x/y"}
    assert settings.broker.url == "mqtt://127.0.0.1:1883"
    assert settings.mountpoint == ""


def test_environment_wins_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting present in both the file and the environment takes the environment value."""
    path = write_toml(
        tmp_path, '[mqttsn]\nport = 2000\nhost = "127.0.0.1"\n[log]\nlevel = "error"\n'
    )
    monkeypatch.setenv("EGW_MQTTSN__PORT", "3000")
    settings = load_settings(path)
    assert settings.mqttsn.port == 3000
    assert settings.mqttsn.host == "127.0.0.1"
    assert settings.log.level == "error"


def test_overrides_win_over_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword overrides passed to load_settings beat both the file and the environment."""
    path = write_toml(tmp_path, 'site = "file"\n')
    monkeypatch.setenv("EGW_SITE", "env")
    assert load_settings(path, site="override").site == "override"


def test_documented_example_toml_is_valid(tmp_path: Path) -> None:
    """The example TOML file in docs/configuration.md loads without errors."""
    settings = load_settings(write_toml(tmp_path, EXAMPLE_TOML))
    assert settings.site == "plant7"
    assert settings.mqttsn.predefined_topics == {1: "sensors/predef", 2: "sensors/alarm"}
    assert settings.mountpoint == "edge/plant7/"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EGW_MQTTSN__PORT", "70000"),
        ("EGW_MQTTSN__PORT", "not-a-number"),
        ("EGW_MQTTSN__GATEWAY_ID", "256"),
        ("EGW_BROKER__URL", "http://broker:1883"),
        ("EGW_BROKER__URL", "broker:1883"),
        ("EGW_MQTTSN__PREDEFINED_TOPICS", '{"0":"sensors/zero"}'),
        ("EGW_MQTTSN__PREDEFINED_TOPICS", '{"65535":"sensors/max"}'),
        ("EGW_MQTTSN__PREDEFINED_TOPICS", '{"1":"sensors/+"}'),
        ("EGW_MQTTSN__PREDEFINED_TOPICS", '{"1":"sensors/#"}'),
        ("EGW_MQTTSN__PREDEFINED_TOPICS", '{"1":""}'),
        ("EGW_LOG__FORMAT", "xml"),
        ("EGW_LOG__LEVEL", "verbose"),
    ],
)
def test_invalid_environment_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """An out-of-range or malformed value raises ValidationError naming the setting."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        load_settings()
    field = name.removeprefix("EGW_").split("__")[-1].lower()
    assert any(field in (str(part) for part in error["loc"]) for error in info.value.errors())


def test_invalid_toml_values_are_rejected(tmp_path: Path) -> None:
    """Bad values and unknown keys in the TOML file raise ValidationError."""
    with pytest.raises(ValidationError):
        load_settings(write_toml(tmp_path, "[mqttsn]\nport = 70000\n"))
    with pytest.raises(ValidationError):
        load_settings(write_toml(tmp_path, "[mqttsn]\nprot = 1884\n"))
    with pytest.raises(ValidationError):
        load_settings(write_toml(tmp_path, "unknown_top_level = 1\n"))


def test_missing_config_file_raises_file_not_found(tmp_path: Path) -> None:
    """A config path that does not exist is an error, not silently ignored."""
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        load_settings(tmp_path / "nope.toml")


def test_settings_are_frozen() -> None:
    """Neither the settings nor their sections can be changed after loading."""
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.site = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.mqttsn.port = 1  # type: ignore[misc]


def test_password_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker password is kept but never shown by repr or a JSON dump."""
    monkeypatch.setenv("EGW_BROKER__PASSWORD", "hunter2")
    settings = load_settings()
    assert settings.broker.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_load_settings_returns_a_settings_instance() -> None:
    """load_settings returns an instance of gateway.config.Settings."""
    assert isinstance(load_settings(), Settings)
