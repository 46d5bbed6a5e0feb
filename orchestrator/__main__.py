"""`python -m orchestrator`: the public API on MESHFORGE_HOST:MESHFORGE_ORCHESTRATOR_PORT (38100)."""

from meshforge.service import serve
from meshforge.settings import OrchestratorSettings, settings_or_exit

if __name__ == "__main__":
    settings = settings_or_exit("orchestrator", OrchestratorSettings)
    serve("orchestrator.app:app", "orchestrator", settings, settings.orchestrator_port)
