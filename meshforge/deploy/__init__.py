"""The deployment generators: the production compose files (``compose``), the Kubernetes manifests
(``kubernetes``), the Prometheus that scrapes either (``prometheus``), meshforge.env.example
(``env_example``) and the README's configuration table (``settings_table``).

scripts/generate_compose.py, scripts/generate_kubernetes.py, scripts/env_example.py and
scripts/settings_table.py are their command lines. No service imports this package: it writes files
for operators and never runs in the fleet. Everything but ``env_example`` and ``settings_table`` (which
read the settings classes) uses the standard library only, so ``python3 -m meshforge.deploy.compose``
runs from the repository root with any Python 3.11, without the project installed.
"""
