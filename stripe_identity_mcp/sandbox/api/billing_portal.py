"""The customer portal: sessions and the account's one portal configuration."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from ..forms import StripeError
from ..store import rand_id
from .context import Ctx, StripeRoute, list_body, now_ts

ALNUM = string.ascii_letters + string.digits


def portal_session_create(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_billing_portal_session_write")
    ctx.allow({"configuration", "customer", "expand", "flow_data", "locale", "on_behalf_of", "return_url"})
    cid = ctx.customer_param()
    if not ctx.sb.config.portal_configured.get(ctx.mode, False):
        if ctx.mode == "test":
            msg = ("You can’t create a portal session in test mode until you save your customer portal settings in test mode "
                   "at https://dashboard.stripe.com/test/settings/billing/portal.")
        else:
            msg = ("You can’t create a portal session in live mode until you save your customer portal settings in live mode "
                   "at https://dashboard.stripe.com/settings/billing/portal.")
        raise StripeError(400, msg)
    conf = ctx.params.get("configuration")
    if conf and conf != ctx.store.portal_config_id:
        raise StripeError(404, f"No such configuration: '{conf}'", code="resource_missing", param="configuration")
    return_url = ctx.params.get("return_url") or None
    if return_url is not None:
        ctx.str_param("return_url", return_url)
        if not re.match(r"^https?://", return_url):
            raise StripeError(400, "Not a valid URL", code="url_invalid", param="return_url")
    locale = ctx.params.get("locale") or None
    secret = "".join(secrets.choice(ALNUM) for _ in range(24))
    prefix = "live_" if ctx.store.livemode else "test_"
    body = {
        "id": rand_id("bps_1", 23),
        "object": "billing_portal.session",
        "configuration": ctx.store.portal_config_id,
        "created": now_ts(),
        "customer": cid,
        "flow": None,
        "livemode": ctx.store.livemode,
        "locale": locale if locale != "auto" else None,
        "on_behalf_of": ctx.params.get("on_behalf_of") or None,
        "return_url": return_url,
        "url": f"https://billing.stripe.com/p/session/{prefix}{secret}",
    }
    return 200, body


def portal_configs_list(ctx: Ctx, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_billing_portal_configuration_read")
    ctx.allow({"active", "ending_before", "expand", "is_default", "limit", "starting_after"})
    ctx.limit()
    data = []
    if ctx.sb.config.portal_configured.get(ctx.mode, False):
        active = ctx.params.get("active")
        if active in (None, "", "true"):
            data = [ctx.store.render_portal_config()]
        if ctx.params.get("is_default") == "false":
            data = []
    return 200, list_body("/v1/billing_portal/configurations", data, False)


def portal_config_retrieve(ctx: Ctx, m: dict[str, str]) -> tuple[int, dict[str, Any]]:
    ctx.need("rak_billing_portal_configuration_read")
    ctx.allow({"expand"})
    if not ctx.sb.config.portal_configured.get(ctx.mode, False) or m["id"] != ctx.store.portal_config_id:
        raise StripeError(404, f"No such configuration: '{m['id']}'", code="resource_missing", param="configuration")
    return 200, ctx.store.render_portal_config()


ROUTES: list[StripeRoute] = [
    StripeRoute("POST", "/v1/billing_portal/sessions", portal_session_create),
    StripeRoute("GET", "/v1/billing_portal/configurations", portal_configs_list),
    StripeRoute("GET", "/v1/billing_portal/configurations/{id}", portal_config_retrieve),
]
