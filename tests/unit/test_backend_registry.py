"""Every stage chooses its backend one way: a registry of configured names, each reported as itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from flux_service.backends import BACKENDS as FLUX_BACKENDS
from image_service.matting import BACKENDS as MATTING_BACKENDS
from meshforge.backends import BackendRegistry
from meshforge.errors import InvalidInput
from postprocess_service.backends import BACKENDS as POSTPROCESS_BACKENDS
from reconstruction_service.backends import BACKENDS as RECONSTRUCTION_BACKENDS

# The offline backends, which load without weights: (registry, configured name, settings to build with).
OFFLINE = [
    (FLUX_BACKENDS, "procedural"),
    (MATTING_BACKENDS, "flood_fill"),
    (RECONSTRUCTION_BACKENDS, "visual_hull"),
    (POSTPROCESS_BACKENDS, "trimesh"),
]


@pytest.mark.parametrize(("registry", "name"), OFFLINE, ids=[name for _, name in OFFLINE])
def test_a_backend_reports_the_name_it_is_configured_by(
    registry: BackendRegistry, name: str, tmp_path: Path
) -> None:
    settings = _settings_for(registry, tmp_path)
    assert registry.load(name, settings).name == name


def test_an_unknown_backend_names_the_setting_and_the_choices() -> None:
    with pytest.raises(InvalidInput) as unknown:
        RECONSTRUCTION_BACKENDS.load("nerf", object())
    message = unknown.value.message
    assert '"nerf"' in message and "MESHFORGE_RECONSTRUCTION_BACKEND" in message
    assert "visual_hull, triposr" in message


def test_a_name_registered_twice_is_refused() -> None:
    registry: BackendRegistry[object, object] = BackendRegistry("test backend", "X", "docs")
    registry.register("one")(lambda settings: object())
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("one")(lambda settings: object())


def test_renderer_and_reconstructors_declare_what_they_use(tmp_path: Path) -> None:
    procedural = FLUX_BACKENDS.load("procedural", _settings_for(FLUX_BACKENDS, tmp_path))
    hull = RECONSTRUCTION_BACKENDS.load("visual_hull", _settings_for(RECONSTRUCTION_BACKENDS, tmp_path))
    assert procedural.capabilities.posed_views and not procedural.capabilities.batch
    assert hull.capabilities.max_views == 8 and not hull.capabilities.posed_views


def _settings_for(registry: BackendRegistry, data: Path) -> object:
    """The stage's own settings class, whatever it is named, with data folders under ``data``."""
    import inspect

    factory = next(iter(registry._factories.values()))
    annotation = inspect.signature(factory, eval_str=True).parameters["settings"].annotation
    return annotation(data_dir=data)
