"""`python -m reconstruction_service`: listens on MESHFORGE_HOST:MESHFORGE_RECONSTRUCTION_SERVICE_PORT."""

from meshforge.service import serve
from meshforge.settings import ReconstructionSettings, settings_or_exit

if __name__ == "__main__":
    settings = settings_or_exit("reconstruction-service", ReconstructionSettings)
    port = settings.reconstruction_service_port
    serve("reconstruction_service.app:app", "reconstruction-service", settings, port)
