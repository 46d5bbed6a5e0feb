"""Where model weights live under models/, and how a backend finds them without a network.

Production fills models/ with ``scripts/download-models``, which writes the Hugging Face cache layout
(``models/hub/models--<org>--<name>/snapshots/<revision>/``). A plain folder also works, either
``models/<org>/<name>/`` or any folder named by a ``*_model_path`` setting. Backends resolve their
model once at start-up; a missing model is a start-up error that says where we looked and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

from meshforge.errors import ModelNotFound


def hub_cache_folder(models_dir: Path, repo_id: str) -> Path:
    """``models/hub/models--org--name``: the folder huggingface_hub writes for ``repo_id``."""
    return models_dir / "hub" / f"models--{repo_id.replace('/', '--')}"


def candidate_folders(models_dir: Path, repo_id: str, explicit: Path | None = None) -> list[Path]:
    """Every folder that may hold ``repo_id``, in the order they are tried."""
    if explicit is not None:
        return [explicit if explicit.is_absolute() else models_dir / explicit]
    folders = [models_dir / repo_id]
    cache = hub_cache_folder(models_dir, repo_id)
    ref = cache / "refs" / "main"
    if ref.is_file():
        folders.append(cache / "snapshots" / ref.read_text().strip())
    snapshots = cache / "snapshots"
    if snapshots.is_dir():
        newest_first = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        folders += [p for p in newest_first if p.is_dir()]
    else:
        folders.append(snapshots / "<revision>")
    return folders


def locate_model(
    models_dir: Path,
    repo_id: str,
    *,
    required: tuple[str, ...],
    explicit: Path | None = None,
    setting: str,
) -> Path:
    """The first candidate folder of ``repo_id`` that holds every file in ``required``.

    ``setting`` names the environment variable that points at a plain folder, for the error message.
    """
    tried = candidate_folders(models_dir, repo_id, explicit)
    for folder in tried:
        if all((folder / name).exists() for name in required):
            return folder
    looked = "\n".join(f"  - {folder}" for folder in tried)
    raise ModelNotFound(
        f"model {repo_id} not found: no folder holds {', '.join(required)}. Looked in:\n{looked}\n"
        f"Download it with `scripts/download-models {repo_id}` (writes models/hub/), "
        f"or point {setting} at a folder that has it."
    )
