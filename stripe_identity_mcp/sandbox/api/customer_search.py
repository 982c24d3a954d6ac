"""Customer search (``GET /v1/customers/search``): the query grammar and lag live in ``search.py``."""

from __future__ import annotations

import time
from typing import Any

from ..forms import missing
from ..search import decode_page, encode_page, parse_query, search_view
from .context import Ctx, StripeRoute
from .customers import CUSTOMER_EXPANDABLE


def customers_search(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_customer_read")
    ctx.allow({"expand", "limit", "page", "query"})
    limit = ctx.limit()
    expand = ctx.expand({"total_count"} | {"data." + e for e in CUSTOMER_EXPANDABLE})
    inner = {e[5:] for e in expand if e.startswith("data.")}
    if "query" not in ctx.params:
        raise missing("query")
    q = parse_query(ctx.str_param("query", ctx.params["query"]))
    offset = 0
    if ctx.params.get("page"):
        offset = decode_page(ctx.str_param("page", ctx.params["page"]))
    st = ctx.store
    now = time.time()
    lag = ctx.sb.config.search_lag_s
    matches: list[dict[str, Any]] = []
    # full scan over non-deleted customers; lagging records are judged on their previous snapshot
    for cid in st.ids:
        rec = st.customers[cid]
        view = search_view(rec, now, lag)
        if view is not None and q.match(view):
            matches.append(rec)
    # changed-but-lagging records whose old snapshot matched are included above; deleted never.
    matches.sort(key=lambda r: (r["created"], r["seq"]), reverse=True)
    page = matches[offset: offset + limit]
    more = offset + limit < len(matches)
    body: dict[str, Any] = {
        "object": "search_result",
        "data": [st.render_customer(r, inner) for r in page],
        "has_more": more,
        "next_page": encode_page(offset + limit) if more else None,
        "url": "/v1/customers/search",
    }
    if "total_count" in expand:
        body["total_count"] = len(matches)
    return 200, body



# Before the customers' own table: ``/v1/customers/{id}`` would take "search" as an id.
ROUTES: list[StripeRoute] = [StripeRoute("GET", "/v1/customers/search", customers_search)]
