"""`python -m flux_service`: listens on MESHFORGE_HOST:MESHFORGE_FLUX_SERVICE_PORT (38120)."""

from meshforge.service import serve
from meshforge.settings import FluxSettings, settings_or_exit

if __name__ == "__main__":
    settings = settings_or_exit("flux-service", FluxSettings)
    serve("flux_service.app:app", "flux-service", settings, settings.flux_service_port)
