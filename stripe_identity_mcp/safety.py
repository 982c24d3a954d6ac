"""Compatibility names for code written before the safety model was split by concern.

The safety model lives in three modules now: `cards` (card numbers in arguments), `confirmation`
(the gate of destructive tools) and `audit` (the audit log). Import from those; this module only
re-exports their public names so older imports keep working while branches merge.
"""

from stripe_identity_mcp.audit import (  # noqa: F401
    AuditEntry,
    AuditLog,
    audit,
    audit_log_for,
    audit_path,
    caller_name,
    redact_value,
)
from stripe_identity_mcp.cards import (  # noqa: F401
    CARD_HELP,
    excerpt,
    find_card_numbers,
    is_card_number,
    luhn_ok,
    mask_card,
    refuse_card_numbers,
)
from stripe_identity_mcp.confirmation import (  # noqa: F401
    Confirmation,
    ConfirmArg,
    NotNeeded,
    Refusal,
    can_elicit,
    confirm_resolver,
    require_confirmed,
)
