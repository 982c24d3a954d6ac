"""Card numbers in arguments: found by brand prefix, length and Luhn; refused; echoed only as excerpts.

Card numbers
    `find_card_numbers(text)` finds digit runs (optionally separated by single spaces or dashes)
    that have a card brand's prefix (IIN) and length and pass Luhn, and returns them masked;
    `card_refusal(**arguments)` names the argument when any string in
    them (dict keys and values, list items) contains one. `excerpt(value)` is the only form in
    which a rejected value may be echoed (short, card-masked). The server applies the refusal to
    every string argument of every tool (see card_guard.py) before the tool body runs.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import BaseModel

# A run of digit groups joined by single spaces or dashes (maximal: not touching other digits).
_RUN = re.compile(r"(?<![\d])\d+(?:[ -]\d+)*(?![\d])")
_SEP = re.compile(r"[ -]")
CARD_HELP = "collect cards with Stripe.js / Payment Element and pass a pm_ id instead"


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask_card(digits: str) -> str:
    """`4242424242424242` → `4242 **** **** 4242` (first and last four only)."""
    middle = "*" * (len(digits) - 8)
    groups = [middle[i : i + 4] for i in range(0, len(middle), 4)]
    return " ".join([digits[:4], *groups, digits[-4:]])


# Brand prefixes (IIN ranges) and lengths, from Stripe's testing page and the card networks'
# published ranges. Luhn alone is not enough: one number in ten passes it, so a 13-digit
# millisecond timestamp (1764619200009), an order number or a phone number would be "a card".
# Ranges are inclusive and compared on the first len(low) digits.
CARD_BRANDS: tuple[tuple[str, tuple[tuple[str, str], ...], frozenset[int]], ...] = (
    ("visa", (("4", "4"),), frozenset({13, 16, 19})),
    ("mastercard", (("51", "55"), ("2221", "2720")), frozenset({16})),
    ("amex", (("34", "34"), ("37", "37")), frozenset({15})),
    ("discover", (("6011", "6011"), ("644", "649"), ("65", "65"), ("622126", "622925")), frozenset(range(16, 20))),
    ("diners", (("300", "305"), ("3095", "3095"), ("36", "36"), ("38", "39")), frozenset(range(14, 20))),
    ("jcb", (("3528", "3589"),), frozenset(range(16, 20))),
    ("unionpay", (("62", "62"), ("8100", "8171")), frozenset(range(16, 20))),
    # Maestro only by its issued IINs: the textbook "50, 56–69" would make every 6-prefixed
    # 13-19 digit reference that passes Luhn a card (1 in 10 of them).
    ("maestro", (("5018", "5018"), ("5020", "5020"), ("5038", "5038"), ("5893", "5893"), ("6304", "6304"),
                 ("6759", "6759"), ("6761", "6763")), frozenset(range(13, 20))),
    # Cartes Bancaires, eftpos Australia and Interac cards are co-branded with Visa or Mastercard
    # (Stripe's test cards for them are 4… and 5… numbers), so the rows above cover them.
    ("mir", (("2200", "2204"),), frozenset(range(16, 20))),
)  # fmt: skip


def card_brand(digits: str) -> str | None:
    """The brand whose prefix and length `digits` has (Luhn not checked), else None."""
    for brand, ranges, lengths in CARD_BRANDS:
        if len(digits) not in lengths:
            continue
        for low, high in ranges:
            if low <= digits[: len(low)] <= high:
                return brand
    return None


def is_card_number(digits: str) -> bool:
    """A brand's prefix and length, Luhn-valid, and not one digit repeated."""
    if not (digits.isascii() and digits.isdigit()) or len(set(digits)) == 1:  # 0000000000000 is not a card
        return False
    return card_brand(digits) is not None and luhn_ok(digits)


# Work bound per text: a window is one group-aligned 13–19 digit candidate. Real text has a few;
# "1 1 1 …" (10 MB of single digits) would have millions and take minutes in pure Python.
MAX_WINDOWS = 50_000
TOO_MANY_GROUPS = "too many digit groups to check"  # reported (and refused) instead of hanging
_FIRST_DIGITS = frozenset(low[0] for _, ranges, _ in CARD_BRANDS for low, _ in ranges)


def _candidates(run: str, budget: list[int]) -> list[str] | None:
    """Digit strings of 13–19 digits a run could hold: the whole run, or whole groups of it.

    Other scripts' digits (full-width １, Arabic-Indic ٤ …) count as their ASCII values: a card
    number typed in them is still a card number. None when `budget` (windows left) runs out.
    """
    groups = [g if g.isascii() else "".join(str(unicodedata.decimal(c)) for c in g) for g in _SEP.split(run)]
    found: list[str] = []
    for start in range(len(groups)):
        if groups[start][0] not in _FIRST_DIGITS:  # no brand starts like this: skip the start cheaply
            continue
        digits = ""
        for end in range(start, len(groups)):
            digits += groups[end]
            if len(digits) > 19:
                break
            if len(digits) >= 13:
                found.append(digits)
                budget[0] -= 1
                if budget[0] < 0:
                    return None
    return sorted(found, key=len, reverse=True)  # the whole run first, then the longest parts


def find_card_numbers(text: str) -> list[str]:
    """Masked forms of every card number in `text` (never the number itself).

    A text with more candidate windows than MAX_WINDOWS yields TOO_MANY_GROUPS (callers refuse it
    like a card: it is no legitimate Stripe value, and checking it fully would stall the server).
    """
    if not isinstance(text, str) or len(text) < 13:
        return []
    out: list[str] = []
    budget = [MAX_WINDOWS]
    for match in _RUN.finditer(text):
        run = match.group(0)
        if sum(c.isdigit() for c in run) < 13:
            continue
        candidates = _candidates(run, budget)
        if candidates is None:
            return [*out, TOO_MANY_GROUPS]
        for digits in candidates:
            if is_card_number(digits):
                masked = mask_card(digits)
                if masked not in out:
                    out.append(masked)
                break
    return out


EXCERPT = 40


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """How a rejected value may appear in an answer: repr of at most `limit` characters, cards masked.

    A 10 MB argument must not come back as a 10 MB error, and a card number pasted into the wrong
    field must not come back at all.
    """
    text = value if isinstance(value, str) else repr(value)
    short = text[:limit]
    window = text[: limit + 40]  # any card that starts inside the excerpt ends inside the window
    if find_card_numbers(window):
        short = mask_in(window)[:limit]
    more = f"…(+{len(text) - limit} chars)" if len(text) > limit else ""
    return repr(short) + more


def _first_card(value: Any, path: str) -> str | None:
    """The path (e.g. `metadata['note']`) of the first string holding a card number, or None."""
    if isinstance(value, str):
        return path if find_card_numbers(value) else None
    if isinstance(value, int) and not isinstance(value, bool):  # a card sent as a JSON number is still one
        return path if value >= 10**12 and find_card_numbers(str(value)) else None
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        for key, sub in value.items():
            if isinstance(key, str) and find_card_numbers(key):
                return f"{path} (key {key[:4]}…)"
            hit = _first_card(sub, f"{path}[{excerpt(key)}]")  # keys are caller text too: short
            if hit:
                return hit
    elif isinstance(value, (list, tuple, set)):
        for index, sub in enumerate(value):
            hit = _first_card(sub, f"{path}[{index}]")
            if hit:
                return hit
    return None


def card_refusal(**fields: Any) -> str | None:
    """The refusal naming the first argument that contains a card number (None is skipped), or None.

    Pure, so that the CLIs can import this module without the MCP SDK; `card_guard.refuse_card_numbers`
    raises it as the tools' ToolError."""
    for name, value in fields.items():
        if value is None:
            continue
        where = _first_card(value, name)
        if where is not None:
            at = "" if where == name else f" (at {where})"
            return (
                f"argument '{name}'{at} contains what looks like a card number; {CARD_HELP}. "
                "Nothing was sent to Stripe."
            )
    return None


def mask_in(text: str) -> str:
    """`text` with every card number in it replaced by `[card 4242 **** **** 4242]`."""
    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        found = find_card_numbers(run)
        return f"[card {found[0]}]" if found else run

    return _RUN.sub(replace, text)
