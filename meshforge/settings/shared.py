"""Groups of settings that several processes read, each defined once and mixed into their classes.

Which process reads which group: ``StageUrls`` the orchestrator (stage health) and the dispatcher,
``FluxUrls`` (a part of it) image-service too; ``ClientTimeouts`` and ``TierSettings`` the dispatcher
and image-service; ``ImageLimitsSettings`` the orchestrator and image-service; ``OutboundSettings`` those
two and the dispatcher (webhooks); ``WebhookSettings`` the orchestrator and the dispatcher.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from meshforge.addresses import AllowedNetworks
from meshforge.schemas import QualityTier, ViewCount
from meshforge.settings.base import SettingsGroup, UrlList
from meshforge.stage_schemas import ViewConsistency


class FluxUrls(SettingsGroup):
    """Where the flux-service replicas are."""

    flux_service_urls: UrlList = Field(
        default=["http://127.0.0.1:38120"],
        validation_alias=AliasChoices("MESHFORGE_FLUX_SERVICE_URLS", "FLUX_BACKEND_URL"),
        description=(
            "Replicas of flux-service as base URLs, comma-separated or a JSON list (e.g. four FLUX URLs "
            "for GPUs 0–3); work is spread over the free ones. `FLUX_BACKEND_URL` is the spec's name for "
            "it; an empty value means no FLUX replica"
        ),
    )


class StageUrls(FluxUrls):
    """Where the replicas of every stage are."""

    image_service_urls: UrlList = Field(
        default=["http://127.0.0.1:38110"],
        description="Replicas of image-service, comma-separated or a JSON list",
    )
    reconstruction_service_urls: UrlList = Field(
        default=["http://127.0.0.1:38130"],
        description="Replicas of reconstruction-service (e.g. one per GPU), comma-separated or a JSON list",
    )
    postprocess_service_urls: UrlList = Field(
        default=["http://127.0.0.1:38140"],
        description="Replicas of postprocess-service, comma-separated or a JSON list",
    )


class ClientTimeouts(SettingsGroup):
    """How calls to stage replicas wait: the dispatcher's to every stage, image-service's to flux-service."""

    stage_timeout_seconds: float = Field(
        default=900.0, gt=0, description="How long a stage may wait for a free replica before the job fails"
    )
    replica_retry_seconds: float = Field(
        default=0.25, gt=0, description="Pause between rounds over busy replicas"
    )
    request_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Longest a single stage call may take"
    )


class TierProfile(BaseModel):
    """What a quality tier means for each stage."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field in MESHFORGE_TIERS is an error

    views: ViewCount
    image_size: int
    voxel_resolution: int
    target_faces: int
    texture_size: int
    # How the image stage keeps generated views in agreement (docs/images.md).
    consistency: ViewConsistency = ViewConsistency.sheet
    # The reconstruction backend (a replica's /health `backend`) the tier's jobs go to where some
    # replicas run it; None, or no replica running it: any replica (orchestrator/view_plan.py).
    reconstruction_backend: str | None = None


DEFAULT_TIERS: dict[QualityTier, TierProfile] = {
    QualityTier.standard: TierProfile(
        views=8, image_size=256, voxel_resolution=96, target_faces=20_000, texture_size=1024
    ),
    QualityTier.high: TierProfile(
        views=8,
        image_size=512,
        voxel_resolution=160,
        target_faces=80_000,
        texture_size=2048,
        reconstruction_backend="instantmesh",
    ),
}


class TierSettings(SettingsGroup):
    """What each quality tier means."""

    tiers: dict[QualityTier, TierProfile] = Field(
        default_factory=lambda: dict(DEFAULT_TIERS),
        description=(
            "JSON object overriding what quality tiers mean, merged over the defaults: only the tiers and "
            'fields given change, e.g. `{"high": {"target_faces": 150000}}` (fields: `views`, '
            "`image_size`, `voxel_resolution`, `target_faces`, `texture_size`, `consistency`, "
            "`reconstruction_backend`: the backend the tier's jobs go to where some replicas run it, "
            "`null` for any)"
        ),
        json_schema_extra={"shown_default": "see below"},
    )

    @field_validator("tiers", mode="before")
    @classmethod
    def _merged_over_defaults(cls, value: Any) -> Any:
        """Each tier given is merged field by field over its default; tiers not given keep theirs."""
        if not isinstance(value, dict):
            return value  # pydantic says what is wrong with it
        merged: dict[str, dict[str, Any]] = {
            tier.value: profile.model_dump() for tier, profile in DEFAULT_TIERS.items()
        }
        for name, given in value.items():
            key = str(name.value if isinstance(name, QualityTier) else name)
            if key not in merged:
                raise ValueError(f'unknown tier "{key}": the tiers are {", ".join(merged)}')
            fields = given.model_dump(exclude_unset=True) if isinstance(given, TierProfile) else given
            if not isinstance(fields, dict):
                raise ValueError(
                    f'tier "{key}" must be a JSON object of fields, e.g. {{"target_faces": 5000}}'
                )
            merged[key].update(fields)
        return merged

    def tier(self, tier: QualityTier) -> TierProfile:
        return self.tiers[tier]


class ImageLimitsSettings(SettingsGroup):
    """Untrusted images (meshforge/images.py): their size, and how many are decoded at once."""

    max_image_pixels: int = Field(
        default=16_000_000,
        ge=1024,
        description=(
            "Largest width × height of an uploaded, downloaded or `image_paths` image, checked from its "
            "header before decoding; larger ones get 422 "
            "([security](docs/security.md#images-validated-by-content-bounded-in-memory))"
        ),
    )
    image_work_concurrency: int = Field(
        default=2,
        ge=1,
        description=(
            "Jobs one image-service decodes and normalises at once (others wait), which bounds its "
            "memory; the orchestrator's upload checks use it too"
        ),
    )


class OutboundSettings(SettingsGroup):
    """Outbound fetches (image URLs; meshforge.outbound)."""

    outbound_allowed_networks: AllowedNetworks = Field(
        default=(),
        description=(
            "Networks that `image_urls` and webhook URLs may reach although they are not public (JSON "
            'list or comma-separated CIDRs, e.g. `["10.1.2.0/24"]`); empty: only public internet addresses. '
            "Give the orchestrator, image-service and dispatchers the same value "
            "([security](docs/security.md#outbound-fetches-image-urls))"
        ),
    )


class WebhookSettings(SettingsGroup):
    """Webhook deliveries (orchestrator/webhooks.py): the orchestrator checks `webhook_url` with them,
    the dispatcher delivers."""

    webhook_secret: str = Field(
        default="",
        description=(
            "HMAC-SHA256 key that signs every webhook delivery (give it to whoever verifies them), e.g. "
            "`openssl rand -hex 32`, the same on the orchestrator and dispatchers; empty: no webhooks, "
            "a `webhook_url` is refused ([webhooks](README.md#webhooks))"
        ),
    )
    webhook_allow_http: bool = Field(
        default=False,
        description="Accept `http://` webhook URLs, not only `https://` (the payload travels unencrypted)",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Deliveries tried per job before the webhook counts as failed"
    )
    webhook_retry_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Wait before the second attempt, doubled for each next one (at most an hour)",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long one delivery waits for the receiver's answer"
    )
