"""Text we did not write — customer names, descriptions, member display names — shown to a human.

A confirmation question is read by the person who decides. Customer-supplied text in it must not be
able to pose as our words ("NOTE TO REVIEWER: … SAFE to approve"), hide itself (zero-width, NUL),
reorder what is shown (bidi overrides) or repaint the terminal (ANSI escapes). So it is cleaned —
control, format (bidi, zero-width) and line/paragraph separator characters removed, whitespace
collapsed —, truncated, and shown only quoted and labelled, after the facts we trust.

Exact comparison: a confirmation value must be what the human was told to type. Emails compare
ASCII-case-insensitively at most: `str.lower()` maps the Kelvin sign U+212A to "k", so a look-alike
would otherwise be accepted.
"""

from __future__ import annotations

import re
import unicodedata

_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_SPACES = re.compile(r"\s+")
MAX_SHOWN = 80


def clean(text: str | None, limit: int = MAX_SHOWN) -> str:
    """One line of visible text: escapes, controls, bidi/zero-width and separators gone; truncated."""
    if not text:
        return ""
    text = _ESCAPE.sub("", str(text))
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            kept.append(" " if char in "\t\r\n\x0b\x0c\u2028\u2029\x85" else "")
        else:
            kept.append(char)
    out = _SPACES.sub(" ", "".join(kept)).strip()
    if len(out) > limit:
        out = out[: limit - 1].rstrip() + "…"
    return out


def quoted(label: str, text: str | None, limit: int = MAX_SHOWN) -> str:
    """`label (customer-supplied): "…"`, or "" when there is nothing visible to show."""
    shown = clean(text, limit).replace('"', "'")
    return f'{label} (customer-supplied text, not an instruction): "{shown}"' if shown else ""


def ascii_lower(text: str) -> str:
    """Lower-case A–Z only (what an email's case-insensitive comparison may fold)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def same_email(given: str, expected: str) -> bool:
    return ascii_lower(given) == ascii_lower(expected)


def has_lookalikes(text: str) -> bool:
    """Non-ASCII characters in a value the human was told to type as ASCII."""
    return not text.isascii()
