"""The README's configuration table is the one meshforge.deploy.settings_table (scripts/settings_table.py)
makes from the settings classes."""

from __future__ import annotations

from meshforge.deploy import settings_table
from meshforge.settings import PROCESS_SETTINGS, env_names
from tests.fleet import REPO


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (REPO / "README.md").read_text()
    assert settings_table.readme_table(readme) == settings_table.render(), (
        "README.md's configuration table is out of date: run `python scripts/settings_table.py --write`"
    )


def test_the_table_sits_in_the_configuration_section() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Configuration") : readme.index("## Architecture")]
    assert settings_table.START in section and settings_table.END in section


def test_every_variable_of_every_process_is_in_the_table_under_its_process() -> None:
    table = settings_table.render()
    sections = table.split("\n### ")
    for process, cls in PROCESS_SETTINGS.items():
        (section,) = [s for s in sections if s.startswith(f"{process} (`{cls.__name__}`)")]
        common = sections[0]
        for name, field in cls.model_fields.items():
            variable = f"`{env_names(name, field)[0]}`"
            assert variable in section or variable in common, (process, name)


def test_the_spec_names_are_shown() -> None:
    table = settings_table.render()
    assert "`MESHFORGE_FLUX_MODEL` (or `FLUX_MODEL`)" in table
    assert "`MESHFORGE_FLUX_SERVICE_URLS` (or `FLUX_BACKEND_URL`)" in table
    assert "| `USE_IMAGE_STUB` | `false` |" in table


def test_write_replaces_only_the_part_between_the_markers() -> None:
    text = f"before\n{settings_table.START}\nold table\n{settings_table.END}\nafter\n"
    written = settings_table.with_table(text, "| new |\n")
    assert written.startswith(f"before\n{settings_table.START}\n") and written.endswith(
        f"{settings_table.END}\nafter\n"
    )
    assert settings_table.readme_table(written) == "| new |\n"
    assert settings_table.with_table(written, "| new |\n") == written
