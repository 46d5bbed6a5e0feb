"""Print the requirements of one pyproject extra, with the extras it names resolved, one per line.

Used by the Dockerfile to install a service's dependencies before its sources are copied, so a code
change does not reinstall them:  pip install $(python extra_requirements.py reconstruction)
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def requirements(extra: str, pyproject: Path = Path("pyproject.toml")) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    todo, wanted = [*project["dependencies"], *extras[extra]], set()
    while todo:
        requirement = todo.pop()
        nested = re.fullmatch(r"meshforge\[(.+)\]", requirement)
        if nested:
            todo += [dep for name in nested.group(1).split(",") for dep in extras[name.strip()]]
        else:
            wanted.add(requirement)
    return sorted(wanted)


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1])))
