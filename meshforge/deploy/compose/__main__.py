"""`python3 -m meshforge.deploy.compose`, as scripts/generate_compose.py: from the repository root it runs
with any Python 3.11, the project installed or not (the generator uses the standard library only)."""

from meshforge.deploy.compose.cli import main

raise SystemExit(main())
