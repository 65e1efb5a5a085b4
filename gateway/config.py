"""The only settings model: a TOML file (``--config PATH``) overridden by ``EGW_`` environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas.cloud import CloudConfig
from schemas.config import (
    BrokerConfig,
    CoapConfig,
    LogConfig,
    MqttSnConfig,
    RecognizerConfig,
    RulesConfig,
)
from schemas.http_config import HttpConfig
from schemas.spool_config import SpoolConfig


class Settings(BaseSettings):
    """Gateway settings. Environment variables win over the TOML file, which wins over defaults."""

    model_config = SettingsConfigDict(
        env_prefix="EGW_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )
    toml_path: ClassVar[Path | None] = None

    site: str = Field("site1", description="Site name; used in the default broker mountpoint.")
    data_dir: Path = Field(Path("./data"), description="Directory for sessions and the spool.")
    mqttsn: MqttSnConfig = Field(default_factory=MqttSnConfig)
    coap: CoapConfig = Field(default_factory=CoapConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    recognizer: RecognizerConfig = Field(default_factory=RecognizerConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_path))
        return tuple(sources)

    @model_validator(mode="after")
    def _cloud_needs_broker_and_model(self) -> Settings:
        if self.cloud.enabled and not self.broker.url:
            raise ValueError("EGW_CLOUD__ENABLED needs EGW_BROKER__URL (the cloud is reached "
                             "through the broker)")
        if self.cloud.enabled and not self.recognizer.enabled:
            raise ValueError("EGW_CLOUD__ENABLED needs EGW_RECOGNIZER__ENABLED (the policy is "
                             "edge-first)")
        return self

    @property
    def mountpoint(self) -> str:
        """The broker topic prefix with ``{site}`` resolved."""
        return self.broker.mountpoint.replace("{site}", self.site)


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once: defaults, then the TOML file, then environment, then overrides."""
    if config_path is not None and not config_path.is_file():
        raise FileNotFoundError(f"config file not found: {config_path}")
    bound = type("Settings", (Settings,), {"toml_path": config_path})
    settings: Settings = bound(**overrides)
    return settings
