"""`python -m orchestrator`: the public API on MESHFORGE_HOST:MESHFORGE_ORCHESTRATOR_PORT (38100)."""

from meshforge.service import serve
from meshforge.settings import OrchestratorSettings, load_settings

if __name__ == "__main__":
    settings = load_settings(OrchestratorSettings)
    serve(
        "orchestrator.app:app", "orchestrator", settings.host, settings.orchestrator_port, settings.log_level
    )
