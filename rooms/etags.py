"""Entity tags: the one If-None-Match matcher (short polling's versions, served media files)."""

from __future__ import annotations


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match holds ``*`` or a list of tags; compared weakly (RFC 9110 13.1.2): ``W/`` is ignored."""
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags
