"""Billing toolset: payment methods of a customer (read), portal sessions, attach / detach."""

import re
from typing import Annotated, Any, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve
from pydantic import Field

from stripe_identity_mcp.audit import audit
from stripe_identity_mcp.card_guard import refuse_card_numbers
from stripe_identity_mcp.cards import CARD_HELP, find_card_numbers
from stripe_identity_mcp.clients.errors import BadRequestError, StripeIdentityError, UnexpectedResponseError
from stripe_identity_mcp.confirmation import ConfirmArg, Confirmation, confirm_resolver, require_confirmed
from stripe_identity_mcp.models.billing import SubscriptionList, subscription_summary
from stripe_identity_mcp.models.stripe import BILLING_STATUSES, Customer, PaymentMethod, Subscription
from stripe_identity_mcp.models.writes import PaymentMethodChange, PaymentMethodList, PortalSessionOut, pm_summary
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import (
    DESTRUCTIVE,
    READ,
    WRITE,
    WRITE_IDEMPOTENT,
    deps,
    drop_none,
    next_cursor,
    stripe_proof,
    tool_error,
    tool_errors,
)
from stripe_identity_mcp.toolsets.proof import OutcomeError, prove

PM_RE = re.compile(r"^pm_[A-Za-z0-9_]+$")
RETURN_URL_RE = re.compile(r"^(https://[^\s]+|http://(localhost|127\.0\.0\.1)(:\d+)?(/[^\s]*)?)$")
PmId = Annotated[str, Field(description="pm_... id")]
CustomerId = Annotated[str, Field(pattern=r"^cus_[A-Za-z0-9]+$")]  # slim variant of common.CustomerId


SubStatus = Literal["all", "active", "trialing", "past_due", "unpaid", "paused", "incomplete", "canceled", "ended"]


def double_billing(subs: list[Subscription]) -> list[str]:
    """"Is she billed twice?": more than one live subscription to one price or product says maybe."""
    seen: dict[str, list[str]] = {}
    for sub in subs:
        if sub.status not in BILLING_STATUSES:
            continue
        keys = set()
        for item in sub.items.data if sub.items else []:
            if item.price is not None:
                product = item.price.product
                keys.add(f"product {product.get('id') if isinstance(product, dict) else product or item.price.id}")
        for key in keys:
            seen.setdefault(key, []).append(sub.id)
    return [
        f"{len(ids)} live subscriptions to {key}: {', '.join(ids)} — the customer may be billed twice"
        for key, ids in seen.items()
        if len(ids) > 1
    ]


def check_pm_id(value: str) -> None:
    """pm_… only; a card number gets the card-number refusal, not a pattern error echoing it."""
    if find_card_numbers(value) or re.fullmatch(r"[\d -]{13,}", value.strip()):
        raise ToolError(
            f"argument 'payment_method' contains what looks like a card number; {CARD_HELP}. Nothing was sent to Stripe."
        )
    if not PM_RE.match(value):
        raise ToolError(
            "payment_method must be a PaymentMethod id (pm_…, e.g. pm_card_visa in test mode); "
            "collect card details with Stripe.js / Payment Element. Nothing was sent to Stripe."
        )


def is_test_token(payment_method: str) -> bool:
    """Test-mode shorthands (pm_card_visa, …): attaching one makes a new payment method with a new id."""
    return payment_method.startswith("pm_card_")


async def read_attached(app: Any, payment_method: str) -> PaymentMethod:
    if is_test_token(payment_method):
        raise UnexpectedResponseError(
            f"{payment_method} is a test token: attaching it makes a new payment method, which cannot be read back by this id"
        )
    return await app.stripe.retrieve_payment_method(payment_method)


def default_pm(customer: Customer) -> str | None:
    default = customer.invoice_settings.default_payment_method if customer.invoice_settings else None
    return default.get("id") if isinstance(default, dict) else default


def portal_error(mode: str) -> Any:
    """Stripe's 'no portal configuration' 400 → what to do about it."""
    dashboard_mode = "live" if mode.endswith("live") else "test"

    def convert(exc: StripeIdentityError) -> ToolError | None:
        text = exc.message.lower()
        missing = ("portal settings", "default configuration", "not been created")
        if isinstance(exc, BadRequestError) and any(m in text for m in missing):
            return ToolError(
                f"no Customer portal configuration in {mode} mode: create one in the Dashboard → Settings → "
                f"Billing → Customer portal (in {dashboard_mode} mode) and save it, or pass configuration=bpc_…. "
                f"(Stripe: {exc.message} request_id={getattr(exc, 'request_id', None)})"
            )
        return None

    return convert


async def _detach_preview(ctx: Context, payment_method: str) -> str:
    app = deps(ctx)
    check_pm_id(payment_method)
    with tool_errors(app):
        pm = pm_summary(await app.stripe.retrieve_payment_method(payment_method))
    card = f"{pm.brand} ••••{pm.last4}, exp {pm.exp}" if pm.last4 else pm.type
    owner = f"from {pm.customer}" if pm.customer else "(not attached to any customer)"
    return (
        f"Detach {payment_method} ({card}) {owner} in {app.mode_label} mode? It cannot be attached again "
        "or charged afterwards; if it is the default, future invoices have no payment method."
    )


DETACH_GATE = confirm_resolver("payment_method", _detach_preview, action="detached")


@tool(READ)
async def list_customer_payment_methods(
    customer_id: CustomerId,
    ctx: Context,
) -> PaymentMethodList:
    """List a customer's payment methods: id, brand, last4, expiry only."""
    app = deps(ctx)
    with tool_errors(app):
        page = await app.stripe.list_payment_methods(customer_id, limit=100)
        customer = await app.stripe.retrieve_customer(customer_id)
    default = customer.invoice_settings.default_payment_method if customer.invoice_settings else None
    if isinstance(default, dict):
        default = default.get("id")
    return PaymentMethodList(
        mode=app.mode_label,
        customer=customer_id,
        payment_methods=[pm_summary(pm).model_copy(update={"customer": None}) for pm in page.data],
        default_payment_method=default,
        has_more=page.has_more,
    )


@tool(READ)
async def list_customer_subscriptions(
    customer_id: CustomerId,
    ctx: Context,
    status: SubStatus = "all",
    limit: Annotated[int, Field(ge=1, le=100)] = 20,
    starting_after: Annotated[str | None, Field(pattern=r"^sub_[A-Za-z0-9]+$")] = None,
) -> SubscriptionList:
    """List a customer's subscriptions: status, price, quantity, period, cancellation, trial."""
    app = deps(ctx)
    with tool_errors(app):
        page = await app.stripe.list_subscriptions(
            customer=customer_id, status=status, limit=limit, starting_after=starting_after
        )
    subs = [subscription_summary(s) for s in page.data]
    return SubscriptionList(
        mode=app.mode_label,
        customer=customer_id,
        subscriptions=subs,
        has_more=page.has_more,
        next_cursor=next_cursor(page.data, page.has_more, backwards=False),
        warnings=double_billing(page.data),
    )


@tool(WRITE)
async def create_portal_session(
    customer_id: CustomerId,
    return_url: Annotated[str, Field(description="https://... or http://localhost")],
    ctx: Context,
    configuration: str | None = None,
) -> PortalSessionOut:
    """Create a short-lived Customer portal link where the customer manages billing."""
    app = deps(ctx)
    args = {"return_url": return_url, "configuration": configuration}
    async with audit(ctx, "create_portal_session", customer_id, args) as entry:
        refuse_card_numbers(return_url=return_url, configuration=configuration)
        if configuration is not None and not re.fullmatch(r"bpc_[A-Za-z0-9]+", configuration):
            raise ToolError("configuration must be a bpc_... id. Nothing was sent to Stripe.")
        if not RETURN_URL_RE.match(return_url):
            raise ToolError("return_url must start with https:// (or http://localhost for development). Nothing was sent to Stripe.")
        entry.on_error = portal_error(app.mode_label)
        session = await app.stripe.create_portal_session(
            drop_none({"customer": customer_id, "return_url": return_url, "configuration": configuration})
        )
        if session.customer != customer_id or not session.url.startswith(("https://", "http://")):
            raise UnexpectedResponseError(  # a link for someone else, or no link: never hand it out
                f"Stripe answered with a portal session for {session.customer!r}, not {customer_id}, or without a "
                "usable URL: no link is given out",
                hint="try again; if it persists, check STRIPE_API_BASE",
            )
    return PortalSessionOut(
        mode=app.mode_label,
        id=session.id,
        url=session.url,
        customer=session.customer,
        return_url=session.return_url,
        configuration=session.configuration,
        note="Send the URL only to this customer: it signs them in to their billing. It expires soon.",
    )


@tool(WRITE_IDEMPOTENT)
async def attach_payment_method(
    customer_id: CustomerId,
    payment_method: PmId,
    ctx: Context,
    make_default: Annotated[bool, Field(description="set as invoice default")] = True,
) -> PaymentMethodChange:
    """Attach a pm_... to a customer; by default also make it the invoice default."""
    app = deps(ctx)
    args = {"payment_method": payment_method, "make_default": make_default}
    async with audit(ctx, "attach_payment_method", customer_id, args) as entry:
        check_pm_id(payment_method)
        attached = await prove(
            lambda: app.stripe.attach_payment_method(payment_method, customer_id),
            proves=lambda p: p.customer == customer_id and (p.id == payment_method or is_test_token(payment_method)),
            read_back=lambda: read_attached(app, payment_method),
            settled=lambda p: isinstance(p, PaymentMethod) and p.customer == customer_id,
            describe=lambda p: f"it is attached to {getattr(p, 'customer', None) or 'no customer'}",
            action=f"attach {payment_method} to {customer_id}",
            check=f"list_customer_payment_methods(customer_id='{customer_id}')",
            **stripe_proof(app),
        )
        pm = attached.answer if attached.state is None else attached.state
        assert isinstance(pm, PaymentMethod)
        notes = list(attached.notes)
        if make_default:
            try:
                made = await prove(
                    lambda: app.stripe.update_customer(customer_id, {"invoice_settings": {"default_payment_method": pm.id}}),
                    proves=lambda c: default_pm(c) == pm.id,
                    read_back=lambda: app.stripe.retrieve_customer(customer_id),
                    settled=lambda c: isinstance(c, Customer) and default_pm(c) == pm.id,
                    describe=lambda c: f"the invoice default is {default_pm(c) if isinstance(c, Customer) else None}",
                    action=f"make {pm.id} the invoice default of {customer_id}",
                    check=f"list_customer_payment_methods(customer_id='{customer_id}')",
                    **stripe_proof(app),
                )
            except (ToolError, StripeIdentityError) as exc:  # the attach itself is done: say so
                why = str(tool_error(exc, app)) if isinstance(exc, StripeIdentityError) else str(exc)
                raise OutcomeError(
                    f"{pm.id} IS attached to {customer_id}, but making it the invoice default failed: {why}",
                    outcome="partial: attached, default not set",
                ) from None
            notes += made.notes
        entry.outcome = "ok" if not notes else "ok (verified by reading it back)"
    return PaymentMethodChange(
        mode=app.mode_label,
        payment_method=pm_summary(pm),
        customer=customer_id,
        is_default=make_default,
        note=" ".join(notes + ([] if make_default else ["attached only: invoices keep the previous default payment method"])) or None,
    )


@tool(DESTRUCTIVE)
async def detach_payment_method(
    gate: Annotated[ElicitationResult[Confirmation], Resolve(DETACH_GATE)],
    payment_method: PmId,
    ctx: Context,
    confirm: ConfirmArg = None,
) -> PaymentMethodChange:
    """Detach a payment method from its customer for good. confirm=pm id."""
    app = deps(ctx)
    async with audit(ctx, "detach_payment_method", payment_method, {"confirm": confirm}) as entry:
        check_pm_id(payment_method)
        require_confirmed(gate, action="detached")
        before = await app.stripe.retrieve_payment_method(payment_method)
        if not before.customer:
            raise ToolError(f"{payment_method} is not attached to a customer. Nothing was detached.")
        proof = await prove(
            lambda: app.stripe.detach_payment_method(payment_method),
            proves=lambda p: p.id == payment_method and p.customer is None,
            read_back=lambda: app.stripe.retrieve_payment_method(payment_method),
            settled=lambda p: isinstance(p, PaymentMethod) and p.customer is None,
            describe=lambda p: "it is detached" if getattr(p, "customer", 1) is None else f"it is STILL attached to {before.customer}",
            action=f"detach {payment_method} from {before.customer}",
            check=f"list_customer_payment_methods(customer_id='{before.customer}')",
            **stripe_proof(app),
        )
        entry.outcome = proof.audit_outcome
        pm = proof.answer if proof.state is None else proof.state
        assert isinstance(pm, PaymentMethod)
    lost = " The first answer was lost; reading it back shows that attempt detached it." if proof.lost_answer else ""
    return PaymentMethodChange(
        mode=app.mode_label,
        payment_method=pm_summary(pm),
        customer=before.customer,
        note=f"detached from {before.customer}; it can no longer be used or re-attached.{lost}",
    )


TOOLSET = Toolset(
    name="billing",
    description="A customer's payment methods and subscriptions; portal sessions, attach / detach a payment method.",
    read=(list_customer_payment_methods, list_customer_subscriptions),
    write=(create_portal_session, attach_payment_method, detach_payment_method),
)
