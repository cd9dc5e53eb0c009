"""The chat service's pure part: what a message's text becomes."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from rooms.chat import clean_chat_text


@given(st.text())
def test_cleaned_text_has_no_control_or_format_characters_but_newlines_and_is_trimmed(text):
    cleaned = clean_chat_text(text)
    assert all(ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf") for ch in cleaned)
    assert cleaned == cleaned.strip()


@given(st.text())
def test_cleaning_is_idempotent(text):
    assert clean_chat_text(clean_chat_text(text)) == clean_chat_text(text)


def test_line_breaks_of_any_platform_become_newlines():
    assert clean_chat_text("a\r\nb\rc\nd") == "a\nb\nc\nd"


def test_zero_width_and_bidi_overrides_are_removed_but_letters_stay():
    assert clean_chat_text("\u202eevil\u200b \u00fcber\ufeff") == "evil über"
