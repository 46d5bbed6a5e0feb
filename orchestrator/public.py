"""What the public job record may show of the server: no absolute paths, no internal replica URLs.

The stage services answer with absolute paths in the shared folders (a sheet, the views, a mesh) and
the pool names the replica that answered; the job record is read by anyone who may see the job, so
before a stage's details or a failure message are written to it:

- a path inside a storage folder becomes relative to that folder's parent, named by the folder:
  ``/srv/meshforge/inputs/jobs/<id>/views/00-front.png`` → ``inputs/jobs/<id>/views/00-front.png``;
- any other absolute path keeps only its file name;
- a replica URL becomes the replica's position in the stage's URL list (``"replica": 1``, i.e. the
  second of MESHFORGE_RECONSTRUCTION_SERVICE_URLS) in details, and ``reconstruction-service replica 1``
  in messages.

``to_status`` applies the path rules again when it reads a record, so that records written by older
versions (absolute ``asset_path``, absolute paths in details) show none either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

# A detail value that is nothing but an absolute path (sentences are left to the folder prefixes: a
# route such as "POST /3d/upload" in a message must stay as it is).
_ABSOLUTE_PATH = re.compile(r"/[^\s]+")


class PublicView:
    """Rewrites server-side facts into what a caller may see; ``roots`` are the storage folders."""

    def __init__(self, roots: Iterable[Path], replicas: Mapping[str, list[str]] | None = None) -> None:
        prefixes: dict[str, str] = {}
        for root in roots:
            for form in {str(root), str(root.resolve())}:
                prefixes[form.rstrip("/")] = root.name
        # Longest first: a folder nested in another (cache/ inside a data folder) wins.
        self._prefixes = sorted(prefixes.items(), key=lambda item: -len(item[0]))
        labels = {
            url.rstrip("/"): f"{stage} replica {index}"
            for stage, urls in (replicas or {}).items()
            for index, url in enumerate(urls)
        }
        # Longest first, for the same reason: http://h:8000 must not rewrite half of http://h:80001.
        self._replicas = sorted(labels.items(), key=lambda item: -len(item[0]))

    def text(self, value: str) -> str:
        """A message or detail string with storage paths made relative and replica URLs named."""
        for url, label in self._replicas:
            value = value.replace(url, label)
        for prefix, name in self._prefixes:
            value = value.replace(prefix + "/", name + "/")
        return value

    def detail(self, value: Any) -> Any:
        """A stage's detail, every string in it (at any depth) passed through ``text``; a value that
        is still an absolute path after that (outside the storage folders) keeps its file name."""
        if isinstance(value, str):
            value = self.text(value)
            return PurePosixPath(value).name if _ABSOLUTE_PATH.fullmatch(value) else value
        if isinstance(value, dict):
            return {key: self.detail(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.detail(item) for item in value]
        return value


def output_name(path: str | None) -> str | None:
    """An asset or preview path as the public record shows it: relative to outputs/. Files there are
    flat (``<job_id><suffix>``), so an absolute path from an older record is reduced to its name."""
    if not path:
        return None
    return PurePosixPath(path).name if path.startswith("/") else path


_PATHS_ONLY = PublicView(())


def stored_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """A stage detail read from a record, as it may be shown: in records written by older versions,
    absolute paths keep only their file name and the replica URL is left out."""
    shown: dict[str, Any] = _PATHS_ONLY.detail(detail)
    if isinstance(shown.get("replica"), str):
        del shown["replica"]
    return shown
