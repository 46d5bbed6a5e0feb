"""A Hugging Face hub on loopback, for scripts/download-models: the real huggingface_hub client downloads
from it when HF_ENDPOINT points at it.

It serves the routes snapshot_download uses: the repository's revision (``/api/models/<repo>/revision/
<rev>``, with its file list), its file tree (``/api/models/<repo>/tree/<rev>``) and each file
(``HEAD``/``GET /<repo>/resolve/<rev>/<path>``, with the commit and ETag headers the client reads). A gated
repository answers 401 with the hub's ``X-Error-Code: GatedRepo``; an unknown one 404 ``RepoNotFound``.
Every request is recorded, so a test can tell which files were fetched.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ID = r"(?P<repo>[^/]+/[^/]+)"
REVISION = re.compile(rf"^/api/models/{REPO_ID}/revision/(?P<rev>[^/]+)$")
TREE = re.compile(rf"^/api/models/{REPO_ID}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
RESOLVE = re.compile(rf"^/{REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], gated: frozenset[str] = frozenset()) -> None:
        self.repos = repos
        self.gated = gated
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.url = ""

    def fetched(self, repo_id: str) -> set[str]:
        """The files of ``repo_id`` whose bytes were sent (GET)."""
        found = set()
        for method, path in self.requests:
            match = RESOLVE.match(path)
            if method == "GET" and match and match["repo"] == repo_id:
                found.add(match["path"])
        return found


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, value: object) -> None:
            self._answer(200, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def _refuse(self, repo: str) -> bool:
            if repo not in hub.repos:
                self._answer(404, b"not found", {"X-Error-Code": "RepoNotFound", "X-Error-Message": "no"})
                return True
            if repo in hub.gated and not self.headers.get("Authorization"):
                message = f"Access to model {repo} is restricted. You must have access to it."
                self._answer(401, message.encode(), {"X-Error-Code": "GatedRepo", "X-Error-Message": message})
                return True
            return False

        def _serve(self) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path))
            if match := REVISION.match(path):
                if self._refuse(match["repo"]):
                    return
                files = hub.repos[match["repo"]]
                siblings = [{"rfilename": name} for name in files]
                self._json(
                    {"id": match["repo"], "modelId": match["repo"], "sha": COMMIT, "siblings": siblings}
                )
            elif match := TREE.match(path):
                if self._refuse(match["repo"]):
                    return
                files = hub.repos[match["repo"]]
                self._json(
                    [
                        {
                            "type": "file",
                            "path": name,
                            "size": len(data),
                            "oid": hashlib.sha1(data).hexdigest(),
                        }
                        for name, data in files.items()
                    ]
                )
            elif match := RESOLVE.match(path):
                if self._refuse(match["repo"]):
                    return
                data = hub.repos[match["repo"]].get(match["path"])
                if data is None:
                    self._answer(404, b"no such file", {"X-Error-Code": "EntryNotFound"})
                    return
                headers = {
                    "Content-Type": "application/octet-stream",
                    "X-Repo-Commit": COMMIT,
                    "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                }
                self._answer(200, data, headers)
            else:
                self._answer(404, b"unknown route", {})

        do_GET = _serve
        do_HEAD = _serve

    return Handler


@contextmanager
def serve_fake_hub(
    repos: dict[str, dict[str, bytes]], gated: frozenset[str] = frozenset()
) -> Iterator[FakeHub]:
    hub = FakeHub(repos, gated)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
