"""Output encoders for the customer export: JSONL (raw Stripe objects) and CSV (flat, stable columns).

JSONL: one Stripe customer object per line, exactly as the API returned it (UTF-8, compact JSON).

CSV: RFC 4180 (``\\r\\n`` line ends, fields quoted by the csv module when they hold commas, quotes or
newlines), UTF-8, a header row, and this stable column set — new columns are only ever appended:

==========================================  ===============================================================
column                                      value
==========================================  ===============================================================
id                                          ``cus_…``
email, name, phone, description             as stored (customer-supplied text, see neutralisation below)
created                                     ISO 8601 UTC, e.g. ``2026-01-09T08:00:00Z``
created_unix                                unix seconds
currency, balance, delinquent, livemode     as returned (booleans as ``true``/``false``)
address_line1 … address_country             ``address`` flattened (line1, line2, city, state, postal_code, country)
shipping_name, shipping_phone               from ``shipping``
shipping_address_line1 … _country           ``shipping.address`` flattened
invoice_settings_default_payment_method     ``pm_…`` id (or the expanded object's id)
default_source, tax_exempt, invoice_prefix  as returned
preferred_locales                           joined with ``;``
metadata                                    JSON object (keys sorted), ``{}`` when empty
==========================================  ===============================================================

Spreadsheet formula injection: every text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with a single quote ``'`` (OWASP "CSV injection"), so Excel, LibreOffice
and Google Sheets show it as text instead of evaluating it. Numeric and boolean columns we format
ourselves (created_unix, balance, delinquent, livemode) are never prefixed, so a negative balance stays
a number. The JSONL output is not altered.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")


def format_for(filename: str, given: str | None) -> Format | None:
    """The format to write: `given`, else the file name's extension; None when neither tells.

    Raises ValueError when `given` contradicts a known extension (``format=csv`` for ``x.jsonl``):
    the file would be named for one format and hold the other.
    """
    suffix = filename.rsplit("/", 1)[-1].rpartition(".")[2].lower() if "." in filename else ""
    implied = next((f for f in FORMATS if f == suffix), None)
    if given is None:
        return implied
    if given not in FORMATS:
        raise ValueError(f"unknown format {given!r}: use jsonl or csv")
    if implied is not None and implied != given:
        raise ValueError(f"format {given} contradicts the file name's .{implied} extension: change one of them")
    return given  # type: ignore[return-value]

_ADDRESS_PARTS = ("line1", "line2", "city", "state", "postal_code", "country")

CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "email",
    "name",
    "phone",
    "description",
    "created",
    "created_unix",
    "currency",
    "balance",
    "delinquent",
    "livemode",
    *(f"address_{p}" for p in _ADDRESS_PARTS),
    "shipping_name",
    "shipping_phone",
    *(f"shipping_address_{p}" for p in _ADDRESS_PARTS),
    "invoice_settings_default_payment_method",
    "default_source",
    "tax_exempt",
    "invoice_prefix",
    "preferred_locales",
    "metadata",
)
_NOT_TEXT = {"created_unix", "balance", "delinquent", "livemode"}
_DANGEROUS_FIRST = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix a cell that a spreadsheet would read as a formula with `'`."""
    return "'" + value if value.startswith(_DANGEROUS_FIRST) else value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return str(value.get("id", ""))  # an expanded object: keep its id
    return str(value)


def _iso(ts: Any) -> str:
    if not isinstance(ts, int):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def customer_row(c: dict[str, Any]) -> list[str]:
    """One customer → the CSV_COLUMNS cells (already neutralised)."""
    address = c.get("address") or {}
    shipping = c.get("shipping") or {}
    ship_addr = shipping.get("address") or {}
    invoice = c.get("invoice_settings") or {}
    values: dict[str, Any] = {
        "id": c.get("id"),
        "email": c.get("email"),
        "name": c.get("name"),
        "phone": c.get("phone"),
        "description": c.get("description"),
        "created": _iso(c.get("created")),
        "created_unix": c.get("created"),
        "currency": c.get("currency"),
        "balance": c.get("balance"),
        "delinquent": c.get("delinquent"),
        "livemode": c.get("livemode"),
        "shipping_name": shipping.get("name"),
        "shipping_phone": shipping.get("phone"),
        "invoice_settings_default_payment_method": invoice.get("default_payment_method"),
        "default_source": c.get("default_source"),
        "tax_exempt": c.get("tax_exempt"),
        "invoice_prefix": c.get("invoice_prefix"),
        "preferred_locales": ";".join(c.get("preferred_locales") or []),
        "metadata": json.dumps(c.get("metadata") or {}, sort_keys=True, ensure_ascii=False),
    }
    for part in _ADDRESS_PARTS:
        values[f"address_{part}"] = address.get(part)
        values[f"shipping_address_{part}"] = ship_addr.get(part)
    row = []
    for column in CSV_COLUMNS:
        cell = _text(values[column])
        row.append(cell if column in _NOT_TEXT else neutralise(cell))
    return row


class Encoder:
    """Turns pages of customer dicts into bytes for one format."""

    def __init__(self, fmt: Format) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"unknown format {fmt!r}: use jsonl or csv")
        self.fmt = fmt

    def header(self) -> bytes:
        if self.fmt == "csv":
            return self._csv([list(CSV_COLUMNS)])
        return b""

    def encode(self, customers: Iterable[dict[str, Any]]) -> bytes:
        if self.fmt == "csv":
            return self._csv(customer_row(c) for c in customers)
        return b"".join(
            json.dumps(c, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for c in customers
        )

    @staticmethod
    def _csv(rows: Iterable[list[str]]) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(rows)
        return buf.getvalue().encode()
