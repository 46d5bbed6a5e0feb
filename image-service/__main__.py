"""`python -m image_service`: listens on MESHFORGE_HOST:MESHFORGE_IMAGE_SERVICE_PORT (38110)."""

from meshforge.service import serve
from meshforge.settings import ImageSettings, settings_or_exit

if __name__ == "__main__":
    settings = settings_or_exit("image-service", ImageSettings)
    serve("image_service.app:app", "image-service", settings, settings.image_service_port)
