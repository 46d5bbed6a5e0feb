"""The command line of scripts/generate_compose.py: write a compose file and what it reads."""

from __future__ import annotations

import sys
from pathlib import Path

from meshforge.deploy.common import write_or_print
from meshforge.deploy.compose.companions import write_companions
from meshforge.deploy.compose.layout import layout_for, output_path, parse
from meshforge.deploy.compose.stack import render


def generate(argv: list[str]) -> tuple[Path, str]:
    """The compose text for these arguments, and where it goes."""
    args = parse(argv)
    path = output_path(args)
    text = render(layout_for(args), [a for a in argv if a not in ("--stdout",)], path.name)
    return path, text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path, text = generate(argv)
    written = write_or_print(argv, path, text)
    if "--stdout" not in argv:
        write_companions(argv, path)
    return written
