"""`python -m flux_service`: listens on MESHFORGE_HOST:MESHFORGE_FLUX_SERVICE_PORT (38120)."""

from meshforge.service import serve
from meshforge.settings import FluxSettings, load_settings

if __name__ == "__main__":
    settings = load_settings(FluxSettings)
    port = settings.flux_service_port
    serve("flux_service.app:app", "flux-service", settings.host, port, settings.log_level)
