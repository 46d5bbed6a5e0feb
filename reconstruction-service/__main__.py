"""`python -m reconstruction_service`: listens on MESHFORGE_HOST:MESHFORGE_RECONSTRUCTION_SERVICE_PORT."""

from meshforge.service import serve
from meshforge.settings import ReconstructionSettings, load_settings

if __name__ == "__main__":
    settings = load_settings(ReconstructionSettings)
    serve(
        "reconstruction_service.app:app",
        "reconstruction-service",
        settings.host,
        settings.reconstruction_service_port,
        settings.log_level,
    )
