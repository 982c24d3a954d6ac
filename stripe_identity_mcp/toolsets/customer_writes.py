"""Customer write tools (registered from customers.register only when writes are enabled)."""

from typing import Annotated, Any

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve
from pydantic import Field

from stripe_identity_mcp.clients.errors import NotFoundError, PermissionDeniedError, StripeIdentityError
from stripe_identity_mcp.clients.stripe import StripeClient, idempotency_key_for
from stripe_identity_mcp.models.outputs import summarize
from stripe_identity_mcp.models.writes import CustomerDeleted, CustomerWrite
from stripe_identity_mcp.safety import (
    Confirmation,
    ConfirmArg,
    audit,
    confirm_resolver,
    refuse_card_numbers,
    require_confirmed,
)
from stripe_identity_mcp.settings import Settings
from stripe_identity_mcp.toolsets.common import (
    DESTRUCTIVE,
    WRITE,
    WRITE_IDEMPOTENT,
    check_idempotency_key,
    deps,
    drop_none,
    tool_errors,
)
from stripe_identity_mcp.toolsets.customers import lookup_email

MAX_KEYS = 50
MAX_KEY_LEN = 40
MAX_VALUE_LEN = 500
ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")
LIVE_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete", "paused")

Text = str | None
# Slim schema variants of common.CustomerId / Email (the catalogue has a context budget).
CustomerId = Annotated[str, Field(pattern=r"^cus_[A-Za-z0-9]+$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=512)]
Metadata = Annotated[dict[str, str] | None, Field(description="<=50 keys; key 40, value 500 chars")]
Address = Annotated[dict[str, str] | None, Field(description="line1,line2,city,state,postal_code,country")]


# --- validation ---------------------------------------------------------------------------------
def check_metadata_keys(keys: list[str], what: str) -> None:
    for key in keys:
        if not key:
            raise ToolError(f"{what}: empty metadata key. Nothing was sent to Stripe.")
        if len(key) > MAX_KEY_LEN:
            raise ToolError(
                f"{what}: metadata key '{key[:MAX_KEY_LEN]}…' is {len(key)} characters; Stripe allows "
                f"{MAX_KEY_LEN}. Nothing was sent to Stripe."
            )
        if "[" in key or "]" in key:
            raise ToolError(f"{what}: metadata key {key!r} contains '[' or ']', which Stripe forbids. Nothing was sent to Stripe.")


def check_metadata(metadata: dict[str, str] | None, what: str = "metadata") -> None:
    if not metadata:
        return
    check_metadata_keys(list(metadata), what)
    for key, value in metadata.items():
        if len(value) > MAX_VALUE_LEN:
            raise ToolError(
                f"{what}: value of '{key}' is {len(value)} characters; Stripe allows {MAX_VALUE_LEN}. "
                "Nothing was sent to Stripe."
            )
    if len(metadata) > MAX_KEYS:
        raise ToolError(f"{what}: {len(metadata)} keys; Stripe allows {MAX_KEYS}. Nothing was sent to Stripe.")


def check_address(address: dict[str, str] | None) -> None:
    unknown = sorted(set(address or {}) - set(ADDRESS_FIELDS))
    if unknown:
        raise ToolError(f"address: unknown field(s) {unknown}; use {', '.join(ADDRESS_FIELDS)}. Nothing was sent to Stripe.")


# --- confirmation previews (reads only) -----------------------------------------------------------
async def live_subscriptions(stripe: StripeClient, customer_id: str) -> list[str] | None:
    """Ids of the customer's not-yet-cancelled subscriptions; None when the key may not list them."""
    try:
        page = await stripe.list_subscriptions(customer=customer_id, status="all", limit=100)
    except PermissionDeniedError:
        return None
    return [s.id for s in page.data if s.status in LIVE_STATUSES]


async def _delete_preview(ctx: Context, customer_id: str) -> str:
    app = deps(ctx)
    with tool_errors(app):
        customer = await app.stripe.retrieve_customer(customer_id)
        if customer.deleted:
            raise ToolError(f"{customer_id} is already deleted.")
        subs = await live_subscriptions(app.stripe, customer_id)
    who = ", ".join(x for x in (customer.email, customer.name) if x)
    text = f"Permanently delete {customer_id}{f' ({who})' if who else ''} in {app.mode_label} mode? This cannot be undone."
    if subs is None:
        text += " Its subscriptions (if any) will be cancelled immediately (this key cannot list them)."
    elif subs:
        shown = ", ".join(subs[:5]) + (" …" if len(subs) > 5 else "")
        text += f" Its {len(subs)} active subscription(s) {shown} will be cancelled immediately."
    else:
        text += " It has no active subscriptions."
    return text


async def _clear_preview(ctx: Context, customer_id: str) -> str:
    app = deps(ctx)
    with tool_errors(app):
        customer = await app.stripe.retrieve_customer(customer_id)
    keys = sorted(customer.metadata)
    shown = ", ".join(keys[:10]) + (" …" if len(keys) > 10 else "")
    return f"Remove all {len(keys)} metadata key(s) of {customer_id} ({shown or 'none'})? Other tools may rely on them."


DELETE_GATE = confirm_resolver("customer_id", _delete_preview, action="deleted")
CLEAR_GATE = confirm_resolver("customer_id", _clear_preview, action="changed", only_if="clear_all_metadata")


def register_writes(server: MCPServer, settings: Settings) -> None:
    @server.tool(annotations=WRITE)
    async def create_customer(
        email: Email,
        ctx: Context,
        name: Text = None,
        phone: Text = None,
        description: Text = None,
        address: Address = None,
        metadata: Metadata = None,
        allow_duplicate_email: Annotated[bool, Field(description="create even if it exists")] = False,
        idempotency_key: Text = None,
    ) -> CustomerWrite:
        """Create a Stripe customer (billing record); refused if the email exists in any case."""
        app = deps(ctx)
        args = {"email": email, "name": name, "phone": phone, "description": description, "address": address,
                "metadata": metadata, "allow_duplicate_email": allow_duplicate_email or None,
                "idempotency_key": idempotency_key}  # fmt: skip
        async with audit(ctx, "create_customer", email, args) as entry:
            refuse_card_numbers(email=email, name=name, phone=phone, description=description, address=address,
                                metadata=metadata, idempotency_key=idempotency_key)  # fmt: skip
            check_idempotency_key(idempotency_key)
            check_metadata(metadata)
            check_address(address)
            found = await lookup_email(app.stripe, email, app.mode_label, include_case_variants=True)
            existing = [c.id for c in found.customers] + [v.id for v in found.case_variants]
            if existing and not allow_duplicate_email:
                labels = [f"{c.id} ({c.email})" for c in found.customers]
                labels += [f"{v.id} ({v.email})" for v in found.case_variants]
                raise ToolError(
                    f"a customer with this email already exists in {app.mode_label} mode: {', '.join(labels)}. "
                    "Use that customer, or pass allow_duplicate_email=true to create another. Nothing was created."
                )
            params = drop_none({"email": email, "name": name, "phone": phone, "description": description,
                                "address": address or None, "metadata": metadata or None})  # fmt: skip
            # Same request against the same existing customers → same key: a retried create is one customer.
            key = idempotency_key or idempotency_key_for("POST", "/v1/customers", {**params, "_existing": existing})
            customer = await app.stripe.create_customer(params, idempotency_key=key)
            replayed = app.stripe.last_replayed
            entry.target = customer.id
        warnings = []
        if existing:
            warnings.append(f"{len(existing)} other customer(s) have this email: {', '.join(existing[:10])}")
        return CustomerWrite(
            mode=app.mode_label,
            customer=summarize(customer, "full"),
            replayed=replayed or None,
            note=(
                "Stripe returned the existing customer from an earlier identical request (idempotency replay); "
                "no new customer was created."
                if replayed
                else None
            ),
            warnings=warnings,
        )

    @server.tool(annotations=WRITE_IDEMPOTENT)
    async def update_customer(
        gate: Annotated[ElicitationResult[Confirmation], Resolve(CLEAR_GATE)],
        customer_id: CustomerId,
        ctx: Context,
        name: Text = None,
        email: Text = None,
        phone: Text = None,
        description: Text = None,
        address: Address = None,
        metadata_set: Metadata = None,
        metadata_unset: list[str] | None = None,
        clear_all_metadata: Annotated[bool, Field(description="needs confirm")] = False,
        confirm: Annotated[str | None, Field(description="= customer_id")] = None,
    ) -> CustomerWrite:
        """Update a customer; metadata_set/metadata_unset change only those keys."""
        app = deps(ctx)
        args = {"name": name, "email": email, "phone": phone, "description": description, "address": address,
                "metadata_set": metadata_set, "metadata_unset": metadata_unset,
                "clear_all_metadata": clear_all_metadata or None, "confirm": confirm}  # fmt: skip
        async with audit(ctx, "update_customer", customer_id, args):
            refuse_card_numbers(name=name, email=email, phone=phone, description=description, address=address,
                                metadata_set=metadata_set, metadata_unset=metadata_unset)  # fmt: skip
            check_metadata(metadata_set, "metadata_set")
            check_metadata_keys(metadata_unset or [], "metadata_unset")
            check_address(address)
            both = sorted(set(metadata_set or {}) & set(metadata_unset or []))
            if both:
                raise ToolError(f"keys both set and unset: {both}. Nothing was sent to Stripe.")
            fields = drop_none({"name": name, "email": email, "phone": phone, "description": description,
                               "address": address or None})  # fmt: skip
            if not fields and not metadata_set and not metadata_unset and not clear_all_metadata:
                raise ToolError("nothing to update: give at least one field, metadata_set, metadata_unset or clear_all_metadata.")
            require_confirmed(gate, action="changed")  # only asks when clear_all_metadata=true
            current = await app.stripe.retrieve_customer(customer_id)
            if current.deleted:
                raise ToolError(f"{customer_id} was deleted; deleted customers cannot be updated.")
            base = {} if clear_all_metadata else dict(current.metadata)
            merged = {k: v for k, v in base.items() if k not in set(metadata_unset or [])} | (metadata_set or {})
            if len(merged) > MAX_KEYS:
                raise ToolError(
                    f"the customer would have {len(merged)} metadata keys ({len(base)} now); Stripe allows {MAX_KEYS}. "
                    "Unset some keys first. Nothing was changed."
                )
            params: dict[str, Any] = dict(fields)
            warnings = []
            if clear_all_metadata and not metadata_set:
                params["metadata"] = ""  # explicit, confirmed: Stripe's "clear all"
            else:
                unset_keys = list(current.metadata) if clear_all_metadata else list(metadata_unset or [])
                meta: dict[str, str] = {k: "" for k in unset_keys if k not in (metadata_set or {})}
                meta.update(metadata_set or {})
                if meta:
                    params["metadata"] = meta
                missing = [k for k in metadata_unset or [] if k not in current.metadata]
                if missing:
                    warnings.append(f"not present, nothing to unset: {missing}")
            updated = await app.stripe.update_customer(customer_id, params)
        changed = list(fields)
        if metadata_set:
            changed += [f"metadata.{k}" for k in metadata_set]
        if clear_all_metadata:
            changed.append("metadata (all cleared)")
        elif metadata_unset:
            changed += [f"-metadata.{k}" for k in metadata_unset if k in current.metadata]
        return CustomerWrite(
            mode=app.mode_label, customer=summarize(updated, "full"), changed=changed, warnings=warnings
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def delete_customer(
        gate: Annotated[ElicitationResult[Confirmation], Resolve(DELETE_GATE)],
        customer_id: CustomerId,
        ctx: Context,
        confirm: ConfirmArg = None,
    ) -> CustomerDeleted:
        """Permanently delete a customer and cancel its subscriptions. confirm=customer_id."""
        app = deps(ctx)
        async with audit(ctx, "delete_customer", customer_id, {"confirm": confirm}) as entry:
            require_confirmed(gate, action="deleted")
            try:
                subs = await live_subscriptions(app.stripe, customer_id)
            except NotFoundError:
                subs = []
            entry.on_error = _deleted_hint(customer_id)
            result = await app.stripe.delete_customer(customer_id)
        return CustomerDeleted(
            mode=app.mode_label,
            id=result.id,
            deleted=result.deleted,
            cancelled_subscriptions=subs or [],
            note="Deletion is permanent: the customer cannot be restored or updated"
            + (f"; {len(subs)} subscription(s) were cancelled immediately." if subs else ".")
            + (" Any subscriptions were cancelled too (this key could not list them)." if subs is None else ""),
        )


def _deleted_hint(customer_id: str) -> Any:
    def hint(exc: StripeIdentityError) -> ToolError | None:
        if isinstance(exc, NotFoundError) and "similar object" not in exc.message:
            return ToolError(f"{customer_id} does not exist (or was already deleted) in this mode. Nothing was deleted.")
        return None

    return hint
