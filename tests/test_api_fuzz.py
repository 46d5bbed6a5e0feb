"""Every service's API against its own OpenAPI document, fuzzed by schemathesis over real HTTP.

Hundreds of generated requests, valid and invalid, on every endpoint of the public API and of each
stage service: none may give a server error, and every answer must match the documented status codes,
content types and schemas (errors included: ``{"detail", "code"}``). Not checked: that every
schema-valid body is accepted, since some rules are beyond JSON Schema (exactly one of image_urls /
image_paths; an upload must be a readable image; a path must lie in the shared folders).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import Fleet, start_fleet

pytestmark = pytest.mark.fleet

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def fuzz_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A fleet of its own: the fuzzer's jobs never meet other tests' expectations."""
    running = start_fleet(tmp_path_factory.mktemp("fuzz-fleet"), flux_replicas=1, reconstruction_replicas=1)
    yield running
    running.stop()


SERVICES = {
    "orchestrator": None,  # the public API: fleet.api
    "image-service": "MESHFORGE_IMAGE_SERVICE_URLS",
    "flux-service": "MESHFORGE_FLUX_SERVICE_URLS",
    "reconstruction-service": "MESHFORGE_RECONSTRUCTION_SERVICE_URLS",
    "postprocess-service": "MESHFORGE_POSTPROCESS_SERVICE_URLS",
}


@pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed")
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_generated_requests_get_documented_answers_and_never_a_server_error(
    fuzz_fleet: Fleet, service: str, tmp_path: Path
) -> None:
    assert SCHEMATHESIS is not None
    urls = SERVICES[service]
    base = fuzz_fleet.api if urls is None else fuzz_fleet.env[urls].split(",")[0]
    done = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{base}/openapi.json",
            "--checks=all",
            "--exclude-checks=positive_data_acceptance",  # rules JSON Schema cannot say (see above)
            "--phases=examples,coverage,fuzzing",
            "--max-examples=10",
            # GET /3d/status?wait= long-polls for up to 120 s on purpose
            "--request-timeout=125",
            "--max-response-time=125",
            "--seed=1",
            "--no-color",
        ],
        cwd=tmp_path,  # schemathesis keeps a .schemathesis/ folder where it runs
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
