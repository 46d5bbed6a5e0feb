#!/usr/bin/env python3
"""Write meshforge.env.example: every setting, commented out, with its default and its meaning.

    python scripts/env_example.py            # the file's text, on stdout
    python scripts/env_example.py --write    # rewrite meshforge.env.example at the repository root

The generator is meshforge.deploy.env_example; run this with the project's Python (.venv/bin/python).
"""

from meshforge.deploy.env_example import main

if __name__ == "__main__":
    raise SystemExit(main())
