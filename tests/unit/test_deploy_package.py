"""The deployment generators are the package meshforge.deploy: the fleet never imports it, the compose and
Kubernetes generators need nothing beyond the standard library, and scripts/ holds only their entry
points, which write what the package does."""

from __future__ import annotations

import subprocess
import sys

from meshforge.deploy.compose import cli as compose_cli
from meshforge.deploy.kubernetes import cli as kubernetes_cli
from tests.fleet import REPO

ENTRY_POINTS = {
    "generate_compose.py": "meshforge.deploy.compose.cli",
    "generate_kubernetes.py": "meshforge.deploy.kubernetes.cli",
    "env_example.py": "meshforge.deploy.env_example",
    "settings_table.py": "meshforge.deploy.settings_table",
}
# Every process of the fleet, by the module it runs.
FLEET = (
    "orchestrator.app",
    "orchestrator.dispatcher",
    "image_service.app",
    "flux_service.app",
    "reconstruction_service.app",
    "postprocess_service.app",
)
STDLIB_ONLY = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top != "meshforge" and top not in sys.stdlib_module_names:
            raise ImportError(f"the generators imported {name}")
sys.meta_path.insert(0, Refuse())
import meshforge.deploy.compose.cli, meshforge.deploy.kubernetes.cli
meshforge.deploy.compose.cli.generate(["--gpus", "8"])
meshforge.deploy.kubernetes.cli.generate([])
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_no_process_of_the_fleet_imports_the_generators() -> None:
    code = (
        f"import sys, {', '.join(FLEET)}\nprint([m for m in sys.modules if m.startswith('meshforge.deploy')])"
    )
    done = run(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_compose_and_kubernetes_generators_import_only_the_standard_library() -> None:
    done = run(sys.executable, "-c", STDLIB_ONLY)
    assert done.returncode == 0, done.stderr[-2000:]


def test_each_script_is_only_the_entry_point_of_its_module() -> None:
    for script, module in ENTRY_POINTS.items():
        text = (REPO / "scripts" / script).read_text()
        assert f"from {module} import main\n" in text, script
        assert "importlib" not in text and "sys.path" not in text, script
    assert not (REPO / "scripts" / "prometheus_config.py").exists()  # now meshforge/deploy/prometheus.py


def test_the_scripts_print_what_the_package_generates() -> None:
    done = run(sys.executable, "scripts/generate_compose.py", "--gpus", "4", "--stdout")
    assert done.returncode == 0, done.stderr
    assert done.stdout == compose_cli.generate(["--gpus", "4"])[1]
    done = run(sys.executable, "scripts/generate_kubernetes.py", "--flux-gpus", "2", "--stdout")
    assert done.returncode == 0, done.stderr
    assert done.stdout == kubernetes_cli.generate(["--flux-gpus", "2"])[1]


def test_python_m_runs_the_generators_without_the_project_installed() -> None:
    # -S: no site-packages, so no installed meshforge; -m finds the package in the working folder.
    for module, argv in (("meshforge.deploy.compose", ["--cpu"]), ("meshforge.deploy.kubernetes", [])):
        done = run(sys.executable, "-S", "-m", module, *argv, "--stdout")
        assert done.returncode == 0, done.stderr
        generate = compose_cli.generate if module.endswith("compose") else kubernetes_cli.generate
        assert done.stdout == generate(argv)[1], module


def test_a_python_without_the_project_is_told_how_to_run_the_generators() -> None:
    # -S: no site-packages; the script's own folder (scripts/) holds no meshforge to import.
    for script, module in (("generate_compose.py", "compose"), ("generate_kubernetes.py", "kubernetes")):
        done = run(sys.executable, "-S", f"scripts/{script}", "--stdout")
        assert done.returncode == 1 and not done.stdout, script
        assert f"python3 -m meshforge.deploy.{module}" in done.stderr, done.stderr
