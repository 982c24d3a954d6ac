"""Connect accounts: list and retrieve (fields starting with ``_`` are the sandbox's own)."""

from __future__ import annotations

from typing import Any

from ..store import paginate_records
from .context import Ctx, StripeRoute, cursor, list_body


def _public_account(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in a.items() if not k.startswith("_")}


def accounts_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_connected_account_read")
    ctx.allow({"created", "ending_before", "expand", "limit", "starting_after"})
    limit = ctx.limit()
    created = ctx.created()
    st = ctx.store
    sa = cursor(ctx, "starting_after", st.account_by_id.get, "account")
    eb = cursor(ctx, "ending_before", st.account_by_id.get, "account")
    key = lambda a: (a["created"], a["_seq"])  # noqa: E731
    page, more = paginate_records(st.accounts, limit, sa, eb, created, key=key)
    return 200, list_body("/v1/accounts", [_public_account(a) for a in page], more)


def accounts_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_connected_account_read")
    ctx.allow({"expand"})
    a = ctx.store.account_by_id.get(m["id"])
    if a is None:
        raise ctx.no_such("account", m["id"], "account", exists_other=m["id"] in ctx.other.account_by_id)
    return 200, _public_account(a)


ROUTES: list[StripeRoute] = [
    StripeRoute("GET", "/v1/accounts", accounts_list),
    StripeRoute("GET", "/v1/accounts/{id}", accounts_retrieve),
]
