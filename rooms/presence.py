"""Who is in a room. Filled in by the viewer's presence reports."""

from __future__ import annotations


def room_member_counts(slugs: list[str]) -> dict[str, int]:
    """Members currently present per room slug (rooms with nobody are absent)."""
    return {}
