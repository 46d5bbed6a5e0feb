"""`python3 -m meshforge.deploy.kubernetes`, as scripts/generate_kubernetes.py: from the repository root it
runs with any Python 3.11, the project installed or not (the generator uses the standard library only)."""

from meshforge.deploy.kubernetes.cli import main

raise SystemExit(main())
