"""meshforge.env.example is the one meshforge.deploy.env_example (scripts/env_example.py) makes from the
settings classes, and it is right: every setting once, every line commented out, and each default,
uncommented, reads back as the default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshforge.deploy import env_example
from meshforge.settings import PROCESS_SETTINGS, env_names, is_settings_variable
from tests.fleet import REPO

EXAMPLE = REPO / "meshforge.env.example"


def test_the_committed_example_is_the_generated_one() -> None:
    assert EXAMPLE.read_text() == env_example.render(), (
        "meshforge.env.example is out of date: run `python scripts/env_example.py --write`"
    )


def test_every_line_is_a_comment_or_blank() -> None:
    # Copied as it is (the documented first step), it changes nothing.
    for line in EXAMPLE.read_text().splitlines():
        assert line == "" or line.startswith("#"), line


def test_every_setting_of_every_process_is_listed_once() -> None:
    text = EXAMPLE.read_text()
    listed = [
        line for line in text.splitlines() if "=" in line and line.startswith("# ") and line[2:3].isupper()
    ]
    names = [line[2:].split("=", 1)[0] for line in listed]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for cls in PROCESS_SETTINGS.values():
        for name, field in cls.model_fields.items():
            assert env_names(name, field)[0] in names, (cls.__name__, name)
    # And the variables no settings class reads: the Redis password and the UI server's.
    assert {"MESHFORGE_REDIS_PASSWORD", "MESHFORGE_INTERNAL_TOKEN", "MESHFORGE_UI_ALLOWED_HOSTS"} <= set(
        names
    )


def test_each_process_has_its_section() -> None:
    text = EXAMPLE.read_text()
    for process, cls in PROCESS_SETTINGS.items():
        assert f"\n# {process} ({cls.__name__})\n" in text, process
    assert text.index("# MESHFORGE_FLUX_MODEL=") > text.index("# flux-service (FluxSettings)")
    assert "# MESHFORGE_FLUX_MODEL=black-forest-labs/FLUX.1-schnell\n" in text


def uncommented(tmp_path: Path) -> Path:
    """The example with every value line uncommented, as an operator who sets each one would write it
    (the lines without a value, whose default is none or computed, stay out)."""
    lines = [f"{name}={value}" for name, value in env_example.variables(EXAMPLE.read_text()).items() if value]
    path = tmp_path / "meshforge.env"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("process", sorted(PROCESS_SETTINGS))
def test_the_defaults_shown_read_back_as_the_defaults(
    process: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if is_settings_variable(name):
            monkeypatch.delenv(name)
    cls = PROCESS_SETTINGS[process]
    # Read through the dotenv parser (as compose's env_file and `make run`'s .env are), not the shell.
    read = cls(_env_file=uncommented(tmp_path))  # type: ignore[call-arg]
    default = cls(_env_file=None)  # type: ignore[call-arg]
    assert read.model_dump() == default.model_dump()


def test_deployments_own_values_are_marked() -> None:
    text = EXAMPLE.read_text()

    def note(variable: str) -> str:
        """The comment above the variable's line, unwrapped."""
        before = text[: text.index(f"# {variable}=")]
        return " ".join(
            line.removeprefix("#").strip() for line in before[before.rindex("\n\n") :].split("\n")
        )

    assert "Compose and Kubernetes set it" in note("MESHFORGE_FLUX_SERVICE_URLS")
    assert "Compose and Kubernetes set it" in note("MESHFORGE_FLUX_SERVICE_PORT")
    assert "set it" not in note("MESHFORGE_FLUX_MODEL")
    # The backends are the deployments' defaults, which meshforge.env overrides.
    assert "a value here wins" in note("MESHFORGE_FLUX_BACKEND") and "set it" not in note(
        "MESHFORGE_FLUX_BACKEND"
    )
