"""The one resume rule, shared by long polling (`since`), SSE (`Last-Event-ID`) and WebSocket (`since`)."""

from __future__ import annotations


class BadVersion(ValueError):
    pass


def parse_version(raw: str | bytes | None) -> int | None:
    """A client's last-seen version from a query parameter or header; None when absent."""
    if raw is None or raw in ("", b""):
        return None
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    text = text.strip()
    # isdigit() alone admits "²" and other digits that int() refuses: ASCII only.
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadVersion(f"a version is a non-negative integer, not {text[:32]!r}")
    return int(text)


def needs_snapshot(newest_version: int, known_version: int | None, *, reset_unknown: bool) -> bool:
    """Whether a (re)connecting viewer gets the newest snapshot at once, or waits for the next change.

    Newer than what the client has: send it. The same: wait. A version the room never
    reached (its history came from elsewhere, e.g. a reset database) is a reset for
    the streams, which send the current state once and carry on (SSE's contract: the
    current state first unless the ids are equal); long polling waits instead, since a
    poller that kept getting a version it must ignore would spin.
    """
    if known_version is None or newest_version > known_version:
        return True
    return reset_unknown and known_version > newest_version


# A v1 client resuming with a bare version gets, besides v1's state rule, the newest chat
# messages (as GET .../chat?after=0 answers): a bare id is also what this server writes
# while a stream has no chat position yet, so this is what such a stream missed.
NEWEST_CHAT = 0


def parse_event_id(raw: str | bytes | None) -> tuple[int | None, int | None]:
    """An SSE ``Last-Event-ID``: ``<version>.<chat_id>`` or a bare ``<version>`` (chat: NEWEST_CHAT).

    Raises BadVersion for anything else; (None, None) when absent.
    """
    if raw is None or raw in ("", b""):
        return None, None
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    version, dot, chat = text.strip().partition(".")
    if not version or (dot and not chat):
        raise BadVersion(f"an event id is <version>.<chat id>, not {text[:32]!r}")
    if not dot:
        return parse_version(version), NEWEST_CHAT
    return parse_version(version), parse_version(chat)
