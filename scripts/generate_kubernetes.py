#!/usr/bin/env python3
"""Write the Kubernetes manifests for meshforge spread over several GPU hosts.

The generator is the package meshforge.deploy.kubernetes; this is its command line.
"""

try:
    from meshforge.deploy.kubernetes.cli import main
except ModuleNotFoundError as missing:
    if missing.name != "meshforge":
        raise
    # A host without the project installed: the package itself needs only the standard library.
    raise SystemExit(
        "meshforge is not installed for this Python: use .venv/bin/python (make install), or run "
        "`python3 -m meshforge.deploy.kubernetes` with the same arguments in the repository root"
    ) from None

if __name__ == "__main__":
    raise SystemExit(main())
