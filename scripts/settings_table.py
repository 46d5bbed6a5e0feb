#!/usr/bin/env python3
"""Print the README's configuration table, made from the settings classes (meshforge/settings/).

    python scripts/settings_table.py            # the markdown, on stdout
    python scripts/settings_table.py --write    # rewrite README.md between the settings markers

The generator is meshforge.deploy.settings_table; run this with the project's Python (.venv/bin/python).
"""

from meshforge.deploy.settings_table import main

if __name__ == "__main__":
    raise SystemExit(main())
