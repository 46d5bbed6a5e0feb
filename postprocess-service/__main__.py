"""`python -m postprocess_service`: listens on MESHFORGE_HOST:MESHFORGE_POSTPROCESS_SERVICE_PORT (38140)."""

from meshforge.service import serve
from meshforge.settings import PostprocessSettings, load_settings

if __name__ == "__main__":
    settings = load_settings(PostprocessSettings)
    serve(
        "postprocess_service.app:app",
        "postprocess-service",
        settings.host,
        settings.postprocess_service_port,
        settings.log_level,
    )
