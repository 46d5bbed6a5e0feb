"""YAML written by hand: every string double-quoted (JSON-escaped), so that the generated files can
carry comments and the generators need no YAML library."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

LINE_LENGTH = 110  # a scalar list longer than this goes one item a line


@dataclass
class Comment:
    """A YAML comment line inside a mapping, placed before the next key."""

    text: str


@dataclass
class Block:
    """A multi-line string, written as a YAML literal block (`key: |`) so that it stays readable: a file
    inside a Kubernetes ConfigMap."""

    text: str


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid double-quoted YAML scalar


def emit(value: Any, indent: int) -> list[str]:
    """The lines of a mapping or a list, `indent` levels of two spaces in."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, Comment):
                lines.append(f"{pad}# {item.text}")
            elif isinstance(item, Block):
                lines.append(f"{pad}{key}: |")
                lines.extend(f"{pad}  {line}" if line else "" for line in item.text.splitlines())
            elif isinstance(item, list) and item and not any(isinstance(x, dict) for x in item):
                # Scalar lists inline (a JSON array is YAML flow style) when they fit on one line.
                inline = f"{pad}{key}: [{', '.join(scalar(x) for x in item)}]"
                if len(inline) <= LINE_LENGTH:
                    lines.append(inline)
                else:
                    lines.append(f"{pad}{key}:")
                    lines.extend(emit(item, indent + 1))
            elif isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(emit(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {scalar(item) if not isinstance(item, dict | list) else '{}'}")
    else:
        for item in value:
            if isinstance(item, dict):
                first, *rest = emit(item, indent + 1)
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {scalar(item)}")
    return lines
