"""What text from a caller may contain: the checks behind the public schemas' validators.

Each check raises ValueError with a sentence a person can act on; pydantic places it under the
field (and item) it belongs to, e.g. "image_paths.0: …". None of them echoes the refused value: it
may be thousands of characters long, or hold characters a terminal or a browser would misrender.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_IMAGE_PATH_CHARS = 255  # one file name's limit on common file systems; upload paths are ~45
MAX_IMAGE_URL_CHARS = 2048
# A job id as the orchestrator makes them (uuid4().hex, orchestrator.jobs.new_job_id): every service
# refuses any other, so an id can never name a path outside the shared folders.
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)
# Tabs and line breaks in a prompt are ordinary typing (a pasted paragraph): they become spaces.
_PROMPT_WHITESPACE = str.maketrans(dict.fromkeys("\t\n\r\v\f\x85\u2028\u2029", " "))
# Format characters that emoji sequences need (zero-width joiner / non-joiner); other format
# characters (bidi overrides such as U+202E, invisible separators) only serve to disguise text.
_ALLOWED_FORMAT = frozenset("\u200c\u200d")


def check_job_id(value: str) -> str:
    if not _JOB_ID.fullmatch(value):
        raise ValueError("not a job id (32 hexadecimal characters, as returned when the job was created)")
    return value


def _first_unprintable(value: str) -> str | None:
    """The first character that is not printable Unicode (controls, format, surrogates, unassigned)."""
    return next((c for c in value if not c.isprintable()), None)


def _codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"


def check_image_path(value: str) -> str:
    """A path under inputs/ as POST /3d/upload returns it: relative, plain, short; NFC-normalised."""
    value = unicodedata.normalize("NFC", value)
    if not value:
        raise ValueError("the path is empty: give a path as returned by POST /3d/upload")
    if len(value) > MAX_IMAGE_PATH_CHARS:
        raise ValueError(f"the path is longer than {MAX_IMAGE_PATH_CHARS} characters")
    if (char := _first_unprintable(value)) is not None:
        raise ValueError(f"the path contains the character {_codepoint(char)}, which is not allowed")
    if "\\" in value:
        raise ValueError("the path contains a backslash: separate folders with /")
    if value.startswith("/"):
        raise ValueError("the path is absolute: give it relative to inputs/, as POST /3d/upload returns it")
    if ".." in value.split("/"):
        raise ValueError('a ".." segment would lead outside inputs/: only files under it can be used')
    return value


def check_image_url(value: Any) -> Any:
    """Bounds a URL's length before it is parsed (the URL type checks the rest)."""
    if isinstance(value, str) and len(value) > MAX_IMAGE_URL_CHARS:
        raise ValueError(f"the URL is longer than {MAX_IMAGE_URL_CHARS} characters")
    return value


def clean_prompt(value: str) -> str:
    """Tabs and line breaks become spaces; any other control or format character is refused."""
    value = unicodedata.normalize("NFC", value.translate(_PROMPT_WHITESPACE))
    for char in value:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs") or (category == "Cf" and char not in _ALLOWED_FORMAT):
            raise ValueError(f"the prompt contains the invisible character {_codepoint(char)}: remove it")
    return value
