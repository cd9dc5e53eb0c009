"""Slug and name rules: what a room's slug may be, and how a name someone types is cleaned.

Slugs are ``[a-z0-9-]{1,64}`` everywhere (CONTRACT v2): the URL patterns, the push
router and the database all assume it, so a slug derived from a name keeps only those
characters. Names (rooms, members, upload titles) lose Unicode Cc and Cf characters:
BEL, ESC and NUL would reach terminals, logs and PostgreSQL (which refuses NUL), and
bidirectional overrides (U+202E) make a name display as something else.
"""

from __future__ import annotations

import re
import unicodedata

SLUG_MAX_LENGTH = 64
SLUG_RE = re.compile(r"^[a-z0-9-]{1,64}$")
# Room for "-<attempt>" when the derived slug is taken.
SLUG_BASE_LENGTH = 56
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def is_slug(value: str) -> bool:
    return bool(SLUG_RE.match(value))


def slug_from_name(name: str, default: str = "room") -> str:
    """A slug base from ``name``: ASCII letters and digits, runs of anything else become one ``-``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    base = _NOT_SLUG.sub("-", ascii_name)[:SLUG_BASE_LENGTH].strip("-")
    return base or default


def strip_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` without Unicode Cc and Cf characters (newlines kept when asked, as chat does)."""
    return "".join(ch for ch in text
                   if (keep_newlines and ch == "\n") or unicodedata.category(ch) not in ("Cc", "Cf"))


def clean_name(text: str, max_length: int) -> str:
    """A display name: controls and format characters removed, trimmed, at most ``max_length``."""
    return strip_controls(text).strip()[:max_length].strip()


def has_nul(text: str) -> bool:
    """PostgreSQL text cannot hold NUL; such a value is refused before it reaches the database."""
    return "\x00" in text
