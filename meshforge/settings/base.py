"""The base of every process's settings: the shared folders, Redis, logging, the listen address and the
fleet's internal token, read from ``MESHFORGE_*`` environment variables and a ``.env`` file.

The defaults describe the embedded stack (``make run``): every process on loopback, data folders in
the current directory. Docker and production deployments override them through the environment.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def split_urls(value: Any) -> Any:
    """Accept a comma-separated list as well as a JSON array; an empty value is an empty list."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            return json.loads(value)
        return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
    return value


UrlList = Annotated[list[str], NoDecode, BeforeValidator(split_urls)]
"""A settings field type: base URLs as ``http://a:1,http://b:2`` or ``["http://a:1", "http://b:2"]``."""


class SettingsGroup(BaseSettings):
    """Where every settings class and group reads from: ``MESHFORGE_<FIELD>`` in the environment, then
    in ``.env``. A field with a ``validation_alias`` lists its full names (the prefix is not applied),
    ``MESHFORGE_*`` first, so that name wins when both are set in the same place; the environment
    always wins over ``.env``. Fields can also be passed by name (tests, benchmarks)."""

    model_config = SettingsConfigDict(
        env_prefix="MESHFORGE_", env_file=".env", extra="ignore", validate_by_name=True
    )


class CommonSettings(SettingsGroup):
    """What every process reads."""

    # Storage: the four shared folders of the spec. Each can be moved on its own.
    data_dir: Path = Field(
        default_factory=Path.cwd,
        description="Root of the shared folders `models/ inputs/ outputs/ cache/`",
        json_schema_extra={"shown_default": "current directory"},
    )
    models_dir: Path | None = Field(
        default=None,
        description="Move `models/` on its own (e.g. `/models` in Docker)",
        json_schema_extra={"shown_default": "`<data_dir>/models`"},
    )
    inputs_dir: Path | None = Field(
        default=None,
        description="Move `inputs/` on its own (e.g. `/inputs` in Docker)",
        json_schema_extra={"shown_default": "`<data_dir>/inputs`"},
    )
    outputs_dir: Path | None = Field(
        default=None,
        description="Move `outputs/` on its own (e.g. `/outputs` in Docker)",
        json_schema_extra={"shown_default": "`<data_dir>/outputs`"},
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Move `cache/` on its own (e.g. `/cache` in Docker)",
        json_schema_extra={"shown_default": "`<data_dir>/cache`"},
    )

    redis_url: str = Field(
        default="redis://127.0.0.1:38179/0",
        description="Redis holding `3d:queue` and the `job:{id}` hashes",
    )
    log_level: str = Field(default="INFO", description="Log level of every service")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description=(
            "How every process writes its log lines: `text` for people, or `json`, one object per line "
            "(`time`, `level`, `service`, `logger`, `message`, and `job_id` on every line about a job) "
            "for a log collector ([architecture](docs/architecture.md#metrics-and-logs))"
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address a service listens on (`python -m <service>`)")

    # The fleet's shared secret (docs/security.md).
    internal_token: str = Field(
        default="",
        description=(
            "The fleet's shared secret: when set, the stage services answer only requests carrying it in "
            '`X-Meshforge-Internal-Token` (else 401; `/health` answers only "ok" without it), and the '
            "orchestrator, dispatcher and image-service send it. The same value on every service, e.g. "
            "`openssl rand -hex 32`; empty keeps the embedded `make run` as it is. Compose and Kubernetes "
            "require it ([security](docs/security.md#the-internal-services-and-nginx))"
        ),
    )

    def folder(self, name: str) -> Path:
        explicit: Path | None = getattr(self, f"{name}_dir")
        return (explicit or self.data_dir / name).resolve()

    @property
    def models_path(self) -> Path:
        return self.folder("models")

    @property
    def inputs_path(self) -> Path:
        return self.folder("inputs")

    @property
    def outputs_path(self) -> Path:
        return self.folder("outputs")

    @property
    def cache_path(self) -> Path:
        return self.folder("cache")


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The variables a field is read from, the first one set winning: ``MESHFORGE_<NAME>``, or the names its
    ``validation_alias`` lists."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [f"MESHFORGE_{name.upper()}"]


S = TypeVar("S", bound=CommonSettings)


class SettingsLoader:
    """``load_settings(FluxSettings)``: one process's settings, read once and then kept (per class).
    Tests that change the environment call ``load_settings.cache_clear()``."""

    def __init__(self) -> None:
        self._loaded: dict[type[CommonSettings], CommonSettings] = {}
        self._lock = threading.Lock()

    def __call__(self, cls: type[S]) -> S:
        with self._lock:
            if cls not in self._loaded:
                self._loaded[cls] = cls()
            loaded = self._loaded[cls]
        assert isinstance(loaded, cls)
        return loaded

    def cache_clear(self) -> None:
        with self._lock:
            self._loaded.clear()


load_settings = SettingsLoader()


def settings_or_exit(service: str, cls: type[S]) -> S:
    """``load_settings(cls)`` for a process's entry point: a bad setting stops it with one sentence
    naming the variable and the field (``dispatcher cannot start: MESHFORGE_TIERS: tiers.high.views:
    …``), not a traceback."""
    try:
        return load_settings(cls)
    except ValidationError as error:
        sys.exit(f"{service} cannot start: {describe_settings_error(cls, error)}")


def describe_settings_error(cls: type[CommonSettings], error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        field = cls.model_fields.get(location[0]) if location else None
        variable = env_names(location[0], field)[0] if field is not None else (location or ["settings"])[0]
        message = str(problem["msg"]).removeprefix("Value error, ")
        parts.append(f"{variable}: {'.'.join(location)}: {message}")
    return "; ".join(parts)
