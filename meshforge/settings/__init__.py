"""Settings per process, read from ``MESHFORGE_*`` environment variables (and ``.env``).

Every process reads only its own class, once: ``load_settings(FluxSettings)``. The classes share
``CommonSettings`` (folders, Redis, logging, host, internal token) and small groups of fields that
several processes read (``meshforge.settings.shared``); each field is defined once. The README's
configuration table is generated from them (``scripts/settings_table.py``).
"""

from __future__ import annotations

from typing import Any

from meshforge.settings.base import (
    CommonSettings,
    SettingsGroup,
    UrlList,
    describe_settings_error,
    env_names,
    load_settings,
    settings_or_exit,
    split_urls,
)
from meshforge.settings.control import DispatcherSettings, OrchestratorSettings
from meshforge.settings.shared import (
    DEFAULT_TIERS,
    ClientTimeouts,
    FluxUrls,
    ImageLimitsSettings,
    OutboundSettings,
    StageUrls,
    TierProfile,
    TierSettings,
    WebhookSettings,
)
from meshforge.settings.stages import FluxSettings, ImageSettings, PostprocessSettings, ReconstructionSettings

# Each process and the class it reads, in the order of the README's configuration table.
PROCESS_SETTINGS: dict[str, type[CommonSettings]] = {
    "orchestrator": OrchestratorSettings,
    "dispatcher": DispatcherSettings,
    "image-service": ImageSettings,
    "flux-service": FluxSettings,
    "reconstruction-service": ReconstructionSettings,
    "postprocess-service": PostprocessSettings,
}

# The spec's own names for some settings (FLUX_MODEL, FLUX_BACKEND_URL, USE_IMAGE_STUB): read without the
# MESHFORGE_ prefix, the MESHFORGE_ name winning where both are set.
SPEC_NAMES: frozenset[str] = frozenset(
    variable
    for cls in PROCESS_SETTINGS.values()
    for name, field in cls.model_fields.items()
    for variable in env_names(name, field)
    if not variable.startswith("MESHFORGE_")
)


def is_settings_variable(name: str) -> bool:
    """Whether an environment variable is read as a setting (names are not case-sensitive): ``MESHFORGE_*``
    or one of the spec's names. Tests that start processes leave their own shell's out."""
    upper = name.upper()
    return upper.startswith("MESHFORGE_") or upper in SPEC_NAMES


def field_default(name: str) -> Any:
    """The default of the setting ``name``, whichever process's class holds it (a shared field has one
    definition, so one default)."""
    defaults = [
        cls.model_fields[name].get_default(call_default_factory=True)
        for cls in PROCESS_SETTINGS.values()
        if name in cls.model_fields
    ]
    if not defaults:
        raise KeyError(f"no process reads a setting {name!r}")
    return defaults[0]


__all__ = [
    "DEFAULT_TIERS",
    "PROCESS_SETTINGS",
    "SPEC_NAMES",
    "ClientTimeouts",
    "CommonSettings",
    "DispatcherSettings",
    "FluxSettings",
    "FluxUrls",
    "ImageLimitsSettings",
    "ImageSettings",
    "OrchestratorSettings",
    "OutboundSettings",
    "PostprocessSettings",
    "ReconstructionSettings",
    "SettingsGroup",
    "StageUrls",
    "TierProfile",
    "TierSettings",
    "UrlList",
    "WebhookSettings",
    "describe_settings_error",
    "env_names",
    "field_default",
    "is_settings_variable",
    "load_settings",
    "settings_or_exit",
    "split_urls",
]
