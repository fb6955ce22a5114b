"""The server's configuration, read once from environment variables (a Pod's natural interface). Each field's
description is the documentation of its variable; docs/serving.md lists the same, and a test keeps them in step."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plinth.serving.runtimes import FORMATS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SettingsError(ValueError):
    """A variable is missing or malformed; the message names it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, protected_namespaces=())

    model_uri: str = Field(
        alias="MODEL_URI",
        description="Where the model is: `file:///path`, a plain path, `http(s)://…` or `s3://bucket/key`.",
    )
    model_name: str = Field(
        default="model", alias="MODEL_NAME", min_length=1, description="The name clients use in URLs."
    )
    model_version: str = Field(
        default="", alias="MODEL_VERSION", description="Reported in every response; empty means unversioned."
    )
    model_format: str | None = Field(
        default=None,
        alias="MODEL_FORMAT",
        description="`sklearn` or `onnx`; default: from the file name (`.joblib`, `.pkl`, `.onnx`).",
    )
    model_sha256: str | None = Field(
        default=None,
        alias="MODEL_SHA256",
        pattern=r"^[0-9a-fA-F]{64}$",
        description="When set, the artifact's sha256 must match or loading fails.",
    )
    model_load_timeout_seconds: float = Field(
        default=300, gt=0, alias="MODEL_LOAD_TIMEOUT_SECONDS", description="Download, load and warm-up together."
    )
    model_max_bytes: int = Field(
        default=4 << 30, gt=0, alias="MODEL_MAX_BYTES", description="A larger artifact fails loading."
    )
    model_cache_dir: Path = Field(
        default=Path("/tmp/plinth-models"),
        alias="MODEL_CACHE_DIR",
        description="Where downloaded artifacts are written (the root filesystem may be read-only).",
    )
    storage_credentials_dir: Path | None = Field(
        default=None,
        alias="MODEL_STORAGE_CREDENTIALS_DIR",
        description="A directory of credential files for `s3://` (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …);"
        " ModelDeployment mounts its `storage.secretRef` here.",
    )
    host: str = Field(default="0.0.0.0", alias="HOST", description="The address to listen on.")
    port: int = Field(default=8080, ge=1, le=65535, alias="PORT", description="The port to listen on.")
    max_request_bytes: int = Field(
        default=16 << 20, gt=0, alias="MAX_REQUEST_BYTES", description="A larger request body is refused with 413."
    )
    auth_tokens_file: Path | None = Field(
        default=None,
        alias="AUTH_TOKENS_FILE",
        description="Bearer tokens: a file with one per line, or a directory (a mounted Secret) with one per file."
        " Unset: no authentication.",
    )
    rate_limit_rps: float | None = Field(
        default=None, gt=0, alias="RATE_LIMIT_RPS", description="Requests per second allowed per token."
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, alias="RATE_LIMIT_BURST", description="Bucket size; default: RATE_LIMIT_RPS rounded up."
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL", description="DEBUG, INFO, WARNING or ERROR.")

    @field_validator("model_format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value not in FORMATS:
            raise ValueError(f"one of {', '.join(sorted(FORMATS))}")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        given: dict[str, Any] = {name: env[name] for name in names if env.get(name, "") != ""}
        try:
            return cls.model_validate(given)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise SettingsError(problems) from None
