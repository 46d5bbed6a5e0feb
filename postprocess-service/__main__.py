"""`python -m postprocess_service`: listens on MESHFORGE_HOST:MESHFORGE_POSTPROCESS_SERVICE_PORT (38140)."""

from meshforge.service import serve
from meshforge.settings import PostprocessSettings, settings_or_exit

if __name__ == "__main__":
    settings = settings_or_exit("postprocess-service", PostprocessSettings)
    serve("postprocess_service.app:app", "postprocess-service", settings, settings.postprocess_service_port)
