"""Hub settings, read from HUB_* environment variables and an optional .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Defaults are anchored to the repository, not the working directory, so a script run from
# anywhere in the checkout reaches the same database as the daemon.
REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything the hub can be configured with; each field is HUB_<NAME> in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=REPO_ROOT / ".env", extra="ignore"
    )

    data_dir: Path = REPO_ROOT / "data"
    logs_dir: Path = REPO_ROOT / "logs"
    knowledge_dir: Path = REPO_ROOT / "knowledge"
    database_url: str = Field("", description="default: SQLite file in data_dir")
    chroma_url: str | None = Field(None, description="Chroma server; unset: on disk in data_dir/chroma")
    db_auto_upgrade: bool = Field(
        True, description="migrate the schema at start-up; false: refuse an old one (`db upgrade`)")

    nats_url: str | None = Field(None, description="unset: start the embedded nats-server")
    nats_port: int = Field(4222, description="preferred port of the embedded nats-server")
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = Field(None, description="also required by the embedded server")
    nats_creds: Path | None = Field(None, description="a .creds file (JWT + NKey)")
    nats_nkey_seed: Path | None = None
    nats_tls_ca: Path | None = Field(None, description="CA file to verify the server; enables TLS")
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    nats_max_payload: int = 32 * 1024 * 1024
    stream_name: str = "HUB"
    stream_max_age_days: float = 30.0
    stream_replicas: int = 1
    ack_wait_seconds: float = Field(30.0, description="redelivery delay of unacked events")

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_token: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated origins; empty: CORS off")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line")

    embedding_precision: Literal["int8", "float32"] = Field(
        "int8", description="MiniLM's encoder: int8 (faster; cosine >= 0.99 to float32's vectors) "
                            "or float32 (the reference vectors)")

    batch_size: int = Field(2000, ge=1, le=20_000)
    ws_queue_size: int = Field(1000, ge=1)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'hub.db'}"
        return self

    @property
    def state_file(self) -> Path:
        """Where a running daemon records its URLs for the CLI to find."""
        return self.data_dir / "hub.json"
