#!/usr/bin/env python3
"""Write the production docker-compose file for a server with N GPUs (or the CPU-only profile).

The generator is the package meshforge.deploy.compose; this is its command line.
"""

try:
    from meshforge.deploy.compose.cli import main
except ModuleNotFoundError as missing:
    if missing.name != "meshforge":
        raise
    # A host without the project installed: the package itself needs only the standard library.
    raise SystemExit(
        "meshforge is not installed for this Python: use .venv/bin/python (make install), or run "
        "`python3 -m meshforge.deploy.compose` with the same arguments in the repository root"
    ) from None

if __name__ == "__main__":
    raise SystemExit(main())
