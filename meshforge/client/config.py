"""Where the client connects and as whom: arguments first, then ``MESHFORGE_API`` / ``MESHFORGE_API_KEY``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from meshforge.schemas import OutputFormat

API_VARIABLE = "MESHFORGE_API"
KEY_VARIABLE = "MESHFORGE_API_KEY"
DEFAULT_API = "http://localhost:38100"  # what `make run` serves
DEFAULT_TIMEOUT = 30.0


def _version() -> str:
    try:
        return metadata.version("meshforge")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0"


USER_AGENT = f"meshforge-client/{_version()}"

# Longest first: "cube.obj.zip" is an OBJ bundle, not a ".zip" of something else.
_FORMAT_SUFFIXES: tuple[tuple[str, OutputFormat], ...] = (
    (".obj.zip", OutputFormat.obj),
    (".glb", OutputFormat.glb),
    (".obj", OutputFormat.obj),
    (".fbx", OutputFormat.fbx),
    (".stl", OutputFormat.stl),
    (".usdz", OutputFormat.usdz),
)


@dataclass(frozen=True)
class Connection:
    """The API's base URL and the key sent as ``Authorization: Bearer``."""

    base_url: str
    api_key: str | None = None

    @classmethod
    def resolve(cls, base_url: str | None = None, api_key: str | None = None) -> Connection:
        url = base_url or os.environ.get(API_VARIABLE) or DEFAULT_API
        key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE)
        return cls(url.rstrip("/"), key or None)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def format_of(path: str | Path) -> OutputFormat | None:
    """The output format a file name asks for by its suffix, or None if it names none."""
    name = Path(path).name.lower()
    return next((fmt for suffix, fmt in _FORMAT_SUFFIXES if name.endswith(suffix)), None)
