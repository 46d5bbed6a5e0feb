"""Hostile input never gets a 500: every malformed field, id, query, header and body is a clear 4xx.

Each case goes through the real fleet over HTTP and must answer a 4xx whose body is {detail, code}
(never a 500, never a reset connection). The last test proves the stack took no harm: /health is ok
and a normal job still completes, and its public record shows no server path nor internal URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from meshforge import redis_keys as keys
from meshforge.service import service_app
from meshforge.text import check_image_path, clean_prompt
from orchestrator.public import PublicView, output_name, stored_detail
from tests.fleet import Fleet, wait_for_end

pytestmark = pytest.mark.fleet

JSON = {"Content-Type": "application/json"}
WELL_FORMED_UNKNOWN = "0123456789abcdef0123456789abcdef"


def refused(response: httpx.Response, status: int | None = None) -> str:
    """The answer is a 4xx shaped {detail, code} (the given status, if any); returns the detail."""
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if status is not None:
        assert response.status_code == status, response.text[:500]
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert response.headers.get("x-request-id"), "every answer carries X-Request-ID"
    return body["detail"]


def raw_json(api: httpx.Client, path: str, text: str | bytes) -> httpx.Response:
    """POST a body exactly as written (lone surrogate escapes, 1e400, deep nesting stay as they are)."""
    return api.post(path, content=text if isinstance(text, bytes) else text.encode(), headers=JSON)


# --- from-image: image_paths and image_urls -----------------------------------------------------------

BAD_IMAGE_PATHS: list[tuple[str, Any, str]] = [
    ("5000 characters", ["a" * 5000], "longer than 255"),
    ("256 characters", ["a" * 252 + ".png"], "longer than 255"),
    ("a NUL byte", ["x\u0000.png"], "U+0000"),
    ("an escape sequence", ["\u001b[31mred.png"], "U+001B"),
    ("a right-to-left override", ["uploads/\u202egnp.exe"], "U+202E"),
    ("a line separator", ["a\u2028b.png"], "U+2028"),
    ("a parent segment", ["../x.png"], "outside inputs/"),
    ("a parent segment in the middle", ["uploads/../../etc/passwd"], "outside inputs/"),
    ("an absolute path", ["/etc/passwd"], "absolute"),
    ("a backslash", ["uploads\\..\\..\\x.png"], "backslash"),
    ("an empty path", [""], "empty"),
    ("nine paths", ["uploads/a/00.png"] * 9, "at most 8"),
    ("an encoded traversal (not decoded: no such file)", ["..%2f..%2fetc%2fpasswd"], "does not exist"),
    ("a home folder (not expanded: no such file)", ["~/x.png"], "does not exist"),
    ("a number for a path", [5], "image_paths.0"),
    ("an object for the list", {"a": "b"}, "image_paths"),
    ("nested lists", [["uploads/a/00.png"]], "image_paths.0"),
    ("a number for the list", 12, "image_paths"),
]


@pytest.mark.parametrize(
    ("value", "words"), [c[1:] for c in BAD_IMAGE_PATHS], ids=[c[0] for c in BAD_IMAGE_PATHS]
)
def test_malformed_image_paths_are_refused_by_name(api: httpx.Client, value: Any, words: str) -> None:
    message = refused(api.post("/3d/from-image", json={"image_paths": value}), 422)
    assert words in message
    assert len(message) < 400, "a refused value is not echoed at length"


def test_a_lone_surrogate_in_an_image_path_is_refused(api: httpx.Client) -> None:
    message = refused(raw_json(api, "/3d/from-image", '{"image_paths": ["a\\ud800.png"]}'), 422)
    assert "image_paths.0" in message


@pytest.mark.parametrize(
    ("urls", "words"),
    [
        (["https://example.com/" + "a" * 3000 + ".png"], "longer than 2048"),
        (["https://example.com/a.png"] * 9, "at most 8"),
        ([123], "image_urls.0"),
        ("https://example.com/a.png", "image_urls"),
        ([{"url": "https://example.com/a.png"}], "image_urls.0"),
    ],
    ids=["3000-character URL", "nine URLs", "a number", "a string for the list", "an object"],
)
def test_malformed_image_urls_are_refused(api: httpx.Client, urls: Any, words: str) -> None:
    assert words in refused(api.post("/3d/from-image", json={"image_urls": urls}), 422)


# --- generate: the prompt and the numbers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"prompt": "a red\u0000 cube"}, "U+0000"),
        ({"prompt": "a red \u001b[2J cube"}, "U+001B"),
        ({"prompt": "a red \u202ecube"}, "U+202E"),
        ({"prompt": "a" * 2001}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": {"text": "a red cube"}}, "prompt"),
        ({"prompt": ["a red cube"]}, "prompt"),
        ({"prompt": "\t\n\r "}, "prompt is empty"),
    ],
    ids=["NUL", "escape", "RTL override", "2001 characters", "number", "object", "list", "only whitespace"],
)
def test_malformed_prompts_are_refused(api: httpx.Client, body: dict[str, Any], words: str) -> None:
    assert words in refused(api.post("/3d/generate", json=body), 422)


@pytest.mark.parametrize(
    ("text", "status", "words"),
    [
        ('{"prompt": "\\ud800"}', 422, "prompt"),
        ('{"prompt": "a red cube", "seed": 1e400}', 422, "seed"),
        ('{"prompt": "a red cube", "height_m": 1e400}', 422, "height_m"),
        ('{"prompt": "a red cube", "target_faces": -1e400}', 422, "target_faces"),
        ('{"prompt": "a red cube", "seed": ' + "9" * 5000 + "}", 400, ""),
        ("[" * 10_000 + "]" * 10_000, 400, ""),
        ('{"prompt": ' + "[" * 10_000 + "]" * 10_000 + "}", 400, ""),
        ("{not json", 422, "JSON"),
        ("[]", 422, "JSON object"),
        ('"a red cube"', 422, "JSON object"),
        ("null", 422, ""),
        (b'{"prompt": "a red \xff\xfe cube"}', 400, ""),
    ],
    ids=[
        "lone surrogate",
        "1e400 seed",
        "1e400 height",
        "-1e400 faces",
        "5000-digit integer",
        "10000 nested arrays",
        "10000 nested arrays in a field",
        "broken JSON",
        "an array body",
        "a string body",
        "null body",
        "invalid UTF-8",
    ],
)
def test_hostile_json_bodies_are_refused(
    api: httpx.Client, text: str | bytes, status: int, words: str
) -> None:
    assert words in refused(raw_json(api, "/3d/generate", text), status)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"prompt": "a red cube"}', "text/plain"),
        (b'{"prompt": "a red cube"}', None),
        (b"prompt=a+red+cube", "application/x-www-form-urlencoded"),
        (
            b"--x\r\nContent-Disposition: form-data; name=prompt\r\n\r\na\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
        ),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
    ],
    ids=["text/plain", "no content type", "form", "multipart", "png"],
)
def test_bodies_of_the_wrong_type_are_refused(
    api: httpx.Client, content: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    message = refused(api.post("/3d/generate", content=content, headers=headers), 422)
    assert "Content-Type: application/json" in message


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"files": []}', "application/json"),
        (b"garbage", "multipart/form-data; boundary=x"),
        (
            b"--x\r\nContent-Disposition: form-data; name=files\r\n\r\nnot a file\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
        ),
        (b"--x\r\nContent-Disposition: form-data; name=files", "multipart/form-data"),
    ],
    ids=["json", "garbage multipart", "a field, not a file", "no boundary"],
)
def test_malformed_uploads_are_refused(api: httpx.Client, content: bytes, content_type: str) -> None:
    refused(api.post("/3d/upload", content=content, headers={"Content-Type": content_type}))


@pytest.mark.parametrize(
    ("name", "status"), [("..\\../\u202egnp.exe", 422), ("a" * 5000 + ".png", 400)], ids=["odd", "long"]
)
def test_uploads_with_hostile_file_names_are_refused(api: httpx.Client, name: str, status: int) -> None:
    """The name is never used as a path (files are stored as NN.<format>); the content decides."""
    refused(api.post("/3d/upload", files=[("files", (name, b"not an image", "image/png"))]), status)


# --- job ids in every id route, and query values ------------------------------------------------------

MALFORMED_IDS = [
    "%00",
    "a" * 5000,
    "%2e%2e",
    "..%5cx",
    "0123456789ABCDEF0123456789ABCDEF",
    "0123456789abcdef0123456789abcde",
    "0123456789abcdef0123456789abcdef0",
    "%ff%fe",
    "%ed%a0%80",
    "~",
    "%3Cscript%3E",
    "0123456789abcdef%000123456789abcde",
]
ID_ROUTES = [
    ("GET", "/3d/status/"),
    ("GET", "/3d/download/"),
    ("GET", "/3d/preview/"),
    ("POST", "/3d/cancel/"),
]


@pytest.mark.parametrize(("method", "route"), ID_ROUTES, ids=[r for _, r in ID_ROUTES])
def test_malformed_job_ids_are_422_in_every_id_route(api: httpx.Client, method: str, route: str) -> None:
    for job_id in MALFORMED_IDS:
        response = api.request(method, route + job_id)
        message = refused(response, 422)
        assert message.startswith("job_id: not a job id (32 hexadecimal characters"), (job_id, message)


@pytest.mark.parametrize(("method", "route"), ID_ROUTES, ids=[r for _, r in ID_ROUTES])
def test_ids_that_leave_the_route_or_are_unknown_are_404(api: httpx.Client, method: str, route: str) -> None:
    for job_id in ("..%2fx", "a/b", WELL_FORMED_UNKNOWN):
        refused(api.request(method, route + job_id), 404)


@pytest.mark.parametrize(
    "query",
    [
        "wait=nan",
        "wait=inf",
        "wait=-inf",
        "wait=1e400",
        "wait=-1",
        "wait=abc",
        "wait=%00",
    ],
)
def test_bad_wait_values_are_422(api: httpx.Client, query: str) -> None:
    assert "wait" in refused(api.get(f"/3d/status/{WELL_FORMED_UNKNOWN}?{query}"), 422)


@pytest.mark.parametrize(
    "query",
    [
        "offset=abc",
        "offset=-1",
        "offset=1e3",
        "offset=99999999999999999999999999999",
        "offset=" + "9" * 5000,
        "limit=0",
        "limit=%00",
        "limit=1.5",
        "state=finished",
        "state=%00",
        "state=" + "x" * 5000,
    ],
)
def test_bad_list_queries_are_422(api: httpx.Client, query: str) -> None:
    assert query.split("=")[0] in refused(api.get(f"/3d/jobs?{query}"), 422)


def test_unknown_and_odd_query_parameters_are_ignored(api: httpx.Client) -> None:
    assert api.get("/3d/jobs?x=%00&%ff=%fe&limit=1").status_code == 200


# --- headers ------------------------------------------------------------------------------------------


def test_a_huge_header_is_served(api: httpx.Client) -> None:
    response = api.get("/3d/jobs", headers={"X-Padding": "a" * 60_000})
    assert response.status_code == 200, response.text[:200]


def test_a_sane_request_id_is_kept_and_any_other_replaced(api: httpx.Client) -> None:
    assert api.get("/health", headers={"X-Request-ID": "nginx-1a2b.3c_4"}).headers["x-request-id"] == (
        "nginx-1a2b.3c_4"
    )
    for hostile in (b"a" * 65, b"has space", b"semi;colon", b'quote"', "\u00e9t\u00e9".encode(), b"../x"):
        answered = api.get("/health", headers={"X-Request-ID": hostile}).headers["x-request-id"]
        assert answered.encode() != hostile and len(answered) == 32


# --- the catch-all 500, in a test app -----------------------------------------------------------------


@pytest.fixture
def exploding_app() -> Iterator[TestClient]:
    app = service_app("exploding")

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("secret detail /srv/meshforge/inputs/private.png")

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_an_unexpected_error_answers_a_request_id_and_no_exception_text(
    exploding_app: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = exploding_app.get("/explode", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    body = response.json()
    assert body == {"detail": body["detail"], "code": "internal_error", "request_id": "req-42"}
    assert "req-42" in body["detail"]
    for leak in ("secret", "/srv", "RuntimeError", "private.png"):
        assert leak not in response.text
    assert response.headers["x-request-id"] == "req-42"
    logged = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None, "one log line, with the traceback"
    assert "secret detail" in str(logged[0].exc_info[1])


def test_an_unexpected_error_keeps_the_connection_usable(exploding_app: TestClient) -> None:
    first = exploding_app.get("/explode").headers["x-request-id"]
    second = exploding_app.get("/explode").headers["x-request-id"]
    assert first != second and exploding_app.get("/openapi.json").status_code == 200


# --- the rules themselves, without the fleet ------------------------------------------------------------


def test_image_paths_are_nfc_normalised() -> None:
    assert check_image_path("uploads/e\u0301.png") == "uploads/\u00e9.png"


def test_prompt_tabs_and_line_breaks_become_spaces_and_emoji_joiners_stay() -> None:
    assert clean_prompt("a\tred\r\ncube") == "a red  cube"
    assert clean_prompt("a family \U0001f468\u200d\U0001f469\u200d\U0001f467").endswith("\U0001f467")


def test_the_public_view_hides_storage_paths_and_replica_urls(tmp_path: Any) -> None:
    inputs, outputs = tmp_path / "inputs", tmp_path / "outputs"
    replicas = {"image-service": ["http://127.0.0.1:8000", "http://127.0.0.1:80001"]}
    view = PublicView([inputs, outputs], replicas)
    detail = {
        "sheet_path": f"{inputs}/jobs/x/sheet.png",
        "views": [f"{outputs}/a.glb", "/opt/models/u2net.onnx"],
        "note": f"image-service at http://127.0.0.1:80001 failed on {inputs}/jobs/x/00.png",
        "faces": 12,
    }
    assert view.detail(detail) == {
        "sheet_path": "inputs/jobs/x/sheet.png",
        "views": ["outputs/a.glb", "u2net.onnx"],
        "note": "image-service at image-service replica 1 failed on inputs/jobs/x/00.png",
        "faces": 12,
    }
    assert view.text("upload it with POST /3d/upload") == "upload it with POST /3d/upload"
    assert output_name("/srv/outputs/abc.glb") == "abc.glb" and output_name("abc.glb") == "abc.glb"
    assert stored_detail({"replica": "http://127.0.0.1:8000", "mesh": "/srv/m.glb"}) == {"mesh": "m.glb"}


# --- afterwards: the stack is healthy, and a normal job completes with a clean public record ------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_afterwards_the_stack_is_healthy_and_a_job_completes_with_no_server_path(
    api: httpx.Client, fleet: Fleet
) -> None:
    assert api.get("/health").json()["status"] == "ok"
    job_id = api.post("/3d/generate", json={"prompt": "a red\tcube", "seed": 3}).json()["job_id"]
    status = wait_for_end(api, job_id, timeout=120)
    assert status["state"] == "completed", status["message"]
    assert status["request"]["prompt"] == "a red cube"
    assert status["asset_path"] == f"{job_id}.glb"
    assert status["preview_path"] == f"{job_id}.preview.png"
    internal_urls = [u for k, v in fleet.env.items() if k.endswith("_SERVICE_URLS") for u in v.split(",")]
    for text in _strings(status):
        assert not text.startswith("/") or text.startswith("/3d/"), text
        assert str(fleet.data_dir) not in text and not any(url in text for url in internal_urls), text
    for stage in status["stages"].values():
        assert isinstance(stage["detail"]["replica"], int)
    assert api.get(f"/3d/download/{job_id}").content[:4] == b"glTF"
    assert api.get(f"/3d/preview/{job_id}").content[:4] == b"\x89PNG"


def test_records_of_older_versions_with_absolute_paths_still_download(
    api: httpx.Client, fleet: Fleet
) -> None:
    job_id = api.post("/3d/generate", json={"prompt": "a blue cube", "seed": 4}).json()["job_id"]
    assert wait_for_end(api, job_id, timeout=120)["state"] == "completed"
    outputs = fleet.data_dir / "outputs"
    store = redis.Redis.from_url(fleet.redis.url, decode_responses=True)
    stages = json.loads(store.hget(keys.job(job_id), "stages") or "{}")
    stages["post_processing"]["detail"].update(
        replica="http://127.0.0.1:1", mesh=str(fleet.data_dir / "cache/m.glb")
    )
    store.hset(
        keys.job(job_id),
        mapping={
            "asset_path": str(outputs / f"{job_id}.glb"),
            "preview_path": str(outputs / f"{job_id}.preview.png"),
            "stages": json.dumps(stages),
        },
    )
    status = api.get(f"/3d/status/{job_id}").json()
    assert (status["asset_path"], status["preview_path"]) == (f"{job_id}.glb", f"{job_id}.preview.png")
    assert "replica" not in status["stages"]["post_processing"]["detail"]
    assert status["stages"]["post_processing"]["detail"]["mesh"] == "m.glb"
    assert api.get(f"/3d/download/{job_id}").content[:4] == b"glTF"
    store.hset(keys.job(job_id), "asset_path", "/etc/passwd")  # a record pointing outside outputs/
    assert api.get(f"/3d/download/{job_id}").status_code == 404
