"""API keys: who is calling, and which jobs and uploads they may touch.

Keys are optional. With none configured every caller is the anonymous caller and the API is open, as
in the embedded `make run`. Once keys are configured (``MESHFORGE_API_KEYS_FILE`` and/or
``MESHFORGE_API_KEYS``), every ``/3d/*`` route needs ``Authorization: Bearer <key>``; the server
holds only the SHA-256 of each key, so a leaked key list gives nobody access. Each job records the
name of the key that created it (``api_key`` in its hash) and each upload's owner is kept in Redis
(``upload:{id}``); a key sees and acts on its own, an admin key on everything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.errors import Forbidden, Unauthorized
from meshforge.settings import OrchestratorSettings
from orchestrator.jobs import JobStore

log = logging.getLogger(__name__)

NEEDS_KEY = "this server needs an API key: send it as 'Authorization: Bearer <key>'"
BAD_SCHEME = "send the API key as 'Authorization: Bearer <key>' (the Bearer scheme, then one space)"
BAD_KEY = "this API key is not valid: check it, or ask the operator of this server for one"


class ApiKeyEntry(BaseModel):
    """One entry of the key list. Limits left out take the settings' defaults; 0 means no limit."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    admin: bool = False
    requests_per_minute: int | None = Field(default=None, ge=0)
    max_concurrent_jobs: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class Caller:
    """Who made a request. ``name`` is empty for the anonymous caller (keys off)."""

    name: str = ""
    admin: bool = False
    requests_per_minute: int = 0
    max_concurrent_jobs: int = 0

    @property
    def anonymous(self) -> bool:
        return not self.name

    @property
    def sees_everything(self) -> bool:
        """Admin keys, and everyone when keys are off."""
        return self.admin or self.anonymous


ANONYMOUS = Caller()


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The configured keys. ``enabled`` is True once a key list is configured, even an empty one: a
    misconfigured list shuts the API rather than opening it."""

    def __init__(self, entries: list[ApiKeyEntry], settings: OrchestratorSettings, enabled: bool) -> None:
        self.enabled = enabled
        self._callers = [(entry.sha256.lower(), _caller(entry, settings)) for entry in entries]

    def caller_for(self, key: str) -> Caller | None:
        digest = hash_key(key)
        found = None
        for known, caller in self._callers:  # every entry compared, in constant time: no timing hint
            if hmac.compare_digest(digest, known):
                found = caller
        return found


def _caller(entry: ApiKeyEntry, settings: OrchestratorSettings) -> Caller:
    rpm, jobs = entry.requests_per_minute, entry.max_concurrent_jobs
    return Caller(
        name=entry.name,
        admin=entry.admin,
        requests_per_minute=settings.default_requests_per_minute if rpm is None else rpm,
        max_concurrent_jobs=settings.default_max_concurrent_jobs if jobs is None else jobs,
    )


def load_keys(settings: OrchestratorSettings) -> KeyRing:
    """The key list from the file and the inline setting; a ValueError naming the problem if it is bad."""
    texts: list[tuple[str, str]] = []
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file)
        try:
            texts.append((str(path), path.read_text()))
        except OSError as exc:
            raise ValueError(f"MESHFORGE_API_KEYS_FILE {path} cannot be read: {exc.strerror}") from exc
    if settings.api_keys is not None and settings.api_keys.strip():
        texts.append(("MESHFORGE_API_KEYS", settings.api_keys))
    entries: list[ApiKeyEntry] = []
    for source, text in texts:
        entries.extend(_parse(source, text))
    _check_unique(entries)
    if texts and not entries:
        log.warning("API keys are configured but the list is empty: every /3d/* request will get 401")
    return KeyRing(entries, settings, enabled=bool(texts))


def _parse(source: str, text: str) -> list[ApiKeyEntry]:
    try:
        return TypeAdapter(list[ApiKeyEntry]).validate_python(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(
            f"{source} must be a JSON list of {{name, sha256, admin, requests_per_minute, "
            f"max_concurrent_jobs}} (see scripts/create-api-key): {exc}"
        ) from exc


def _check_unique(entries: list[ApiKeyEntry]) -> None:
    for attribute in ("name", "sha256"):
        values = [getattr(entry, attribute).lower() for entry in entries]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"API keys must have distinct {attribute}s; repeated: {', '.join(duplicates)}")


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(BAD_SCHEME)
    return token.strip()


async def authenticated(request: Request) -> Caller:
    """FastAPI dependency of every /3d/* route: the caller, or 401 when keys are on and none is valid."""
    ring: KeyRing = request.app.state.keys
    if not ring.enabled:
        return ANONYMOUS
    token = _bearer_token(request)
    if token is None:
        raise Unauthorized(NEEDS_KEY)
    caller = ring.caller_for(token)
    if caller is None:
        raise Unauthorized(BAD_KEY)
    return caller


async def may_see_internals(request: Request) -> bool:
    """For /health, which stays open: replica URLs and details only for admins, or when keys are off."""
    ring: KeyRing = request.app.state.keys
    if not ring.enabled:
        return True
    try:
        token = _bearer_token(request)
    except Unauthorized:
        return False
    caller = ring.caller_for(token) if token else None
    return caller is not None and caller.admin


CallerDep = Annotated[Caller, Depends(authenticated)]
InternalsDep = Annotated[bool, Depends(may_see_internals)]


async def check_job_access(store: JobStore, caller: Caller, job_id: str) -> None:
    """404 for a job that does not exist, 403 for another key's job."""
    if caller.sees_everything:
        return
    if await store.api_key(job_id) != caller.name:
        raise Forbidden(f"job {job_id} belongs to another API key: a key sees and acts on its own jobs only")


def upload_id(path: str) -> str | None:
    """The upload an image path names (``uploads/<id>/<file>``), or None for any other path."""
    parts = PurePosixPath(path).parts
    return parts[1] if len(parts) == 3 and parts[0] == "uploads" else None


async def record_upload(redis: Redis, caller: Caller, paths: list[str]) -> None:
    """Remember which key an upload belongs to; the retention sweeper removes it with the upload."""
    if caller.anonymous:
        return
    ids = {upload_id(path) for path in paths} - {None}
    if ids:
        await redis.mset({keys.upload(i): caller.name for i in ids if i})


async def check_upload_access(redis: Redis, caller: Caller, paths: list[str]) -> None:
    """``image_paths`` of a non-admin key may name only that key's own uploads: 403 otherwise."""
    if caller.sees_everything:
        return
    ids = [upload_id(path) for path in paths]
    owners = await redis.mget([keys.upload(i) for i in ids if i]) if all(ids) else []
    for index, path in enumerate(paths):
        if not ids[index] or owners[index] != caller.name:
            raise Forbidden(
                f'image path "{path[:120]}" is not one of your uploads: upload the images with '
                "POST /3d/upload using this key and pass the image_paths it returns"
            )
