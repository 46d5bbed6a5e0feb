"""Downloads land whole or not at all: written to a temporary file beside the target, then renamed."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# A rename keeps the temporary file's 0600; a downloaded asset is an ordinary file.
_FILE_MODE = 0o644
_FILENAME = re.compile(r'filename="?([^";]+)"?')


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """A file to write ``path``'s new content to; it replaces ``path`` only if the block succeeds,
    so a dropped download never leaves half a file (nor destroys the one that was there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def target_path(path: str | Path, content_disposition: str | None, fallback_name: str) -> Path:
    """Where a download goes: ``path``, or inside it under the server's file name if it is a folder."""
    target = Path(path)
    if not target.is_dir():
        return target
    match = _FILENAME.search(content_disposition or "")
    # Only the last component of what the server says: a name is never a way out of the folder.
    name = Path(match[1]).name if match else ""
    return target / (name if name not in ("", ".", "..") else fallback_name)
