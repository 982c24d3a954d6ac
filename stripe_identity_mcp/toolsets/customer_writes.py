"""Customer write tools (the customers toolset's `write=`; served only when writes are enabled)."""

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve
from pydantic import Field

from stripe_identity_mcp.audit import audit
from stripe_identity_mcp.card_guard import refuse_card_numbers
from stripe_identity_mcp.clients.errors import (
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    StripeIdentityError,
    UnexpectedResponseError,
)
from stripe_identity_mcp.clients.stripe import StripeClient
from stripe_identity_mcp.confirmation import ConfirmArg, Confirmation, confirm_resolver, require_confirmed
from stripe_identity_mcp.deps import AppDeps
from stripe_identity_mcp.models.outputs import summarize
from stripe_identity_mcp.models.stripe import NOT_ENDED_STATUSES, Customer
from stripe_identity_mcp.models.writes import CustomerDeleted, CustomerWrite
from stripe_identity_mcp.toolsets.base import Toolset, tool
from stripe_identity_mcp.toolsets.common import (
    DESTRUCTIVE,
    WRITE,
    WRITE_IDEMPOTENT,
    check_idempotency_key,
    deps,
    drop_none,
    stripe_proof,
    tool_errors,
)
from stripe_identity_mcp.toolsets.customers import exact_email_matches, lookup_email
from stripe_identity_mcp.toolsets.proof import GONE, OutcomeError, prove
from stripe_identity_mcp.untrusted import clean, quoted

MAX_KEYS = 50
MAX_KEY_LEN = 40
MAX_VALUE_LEN = 500
ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")

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
    return [s.id for s in page.data if s.status in NOT_ENDED_STATUSES]


async def _delete_preview(ctx: Context, customer_id: str) -> str:
    """Trusted facts first (id, email, mode, what is cancelled); the customer's name last, quoted."""
    app = deps(ctx)
    with tool_errors(app):
        customer = await app.stripe.retrieve_customer(customer_id)
        if customer.deleted:
            raise ToolError(f"{customer_id} is already deleted.")
        subs = await live_subscriptions(app.stripe, customer_id)
    email = f", email {clean(customer.email, 254)}" if customer.email else ", no email"
    text = f"Permanently delete customer {customer_id}{email}, in {app.mode_label} mode? This cannot be undone."
    if subs is None:
        text += " Its subscriptions (if any) will be cancelled immediately (this key cannot list them)."
    elif subs:
        shown = ", ".join(subs[:5]) + (" …" if len(subs) > 5 else "")
        text += f" Its {len(subs)} active subscription(s) {shown} will be cancelled immediately."
    else:
        text += " It has no active subscriptions."
    name = quoted("Name", customer.name)
    return f"{text} {name}." if name else text


async def _clear_preview(ctx: Context, customer_id: str) -> str:
    app = deps(ctx)
    with tool_errors(app):
        customer = await app.stripe.retrieve_customer(customer_id)
    keys = sorted(customer.metadata)
    text = f"Remove all {len(keys)} metadata key(s) of customer {customer_id} in {app.mode_label} mode? Other tools may rely on them."
    shown = quoted("Keys", ", ".join(keys[:10]) + (" …" if len(keys) > 10 else ""), limit=200)
    return f"{text} {shown}." if shown else text


# --- create: one customer per email, and the truth about replays ------------------------------------
CREATE_WINDOW_S = 600  # derived idempotency keys are shared for this long (see README: duplicates)


def email_lock(app: AppDeps, email: str) -> anyio.Lock:
    """This process's lock for a normalised email (striped: bounded memory, rare false sharing)."""
    locks = app.create_locks
    digest = hashlib.sha256(normalise_email(email).encode()).digest()
    return locks[int.from_bytes(digest[:4], "big") % len(locks)]


def normalise_email(email: str) -> str:
    return email.strip().lower()


def derived_create_key(email: str, now: float | None = None) -> str:
    """Same normalised email within one window → same key, across processes: Stripe then makes one
    customer (a second, identical create replays it; a different one is refused as an idempotency
    error) instead of two."""
    window = int((time.time() if now is None else now) // CREATE_WINDOW_S)
    digest = hashlib.sha256(f"create-customer|{normalise_email(email)}|{window}".encode()).hexdigest()
    return f"sim-cus-{digest[:40]}"


async def existing_customers(app: Any, email: str) -> list[str]:
    found = await lookup_email(app.stripe, email, app.mode_label, include_case_variants=True)
    return [f"{c.id} ({c.email})" for c in found.customers] + [f"{v.id} ({v.email})" for v in found.case_variants]


@dataclass
class Created:
    customer: Customer
    replayed: bool = False
    note: str | None = None
    audit: str = "ok"


async def create_once(
    app: Any, params: dict[str, Any], email: str, given_key: str | None, allow_duplicate: bool, existing: list[str]
) -> Created:
    """Create and say what really happened: a new customer, this call's own creation whose first
    answer was lost, or an earlier request's customer — never the deleted one of an old replay."""
    stripe: StripeClient = app.stripe
    derived = given_key is None and not allow_duplicate
    key = given_key or (derived_create_key(email) if derived else f"sim-{uuid.uuid4()}")
    before = {label.split()[0] for label in existing}

    async def read_back() -> Customer | str:  # an answer that proves nothing: is there a new customer now?
        found, _ = await exact_email_matches(stripe, email, [])
        new = [c for c in found if c.id not in before]
        return new[0] if new else GONE

    try:
        proof = await prove(
            lambda: stripe.create_customer(params, idempotency_key=key),
            proves=lambda _: True,  # a Customer answer; what it means is judged below
            read_back=read_back,
            settled=lambda state: isinstance(state, Customer),
            describe=lambda state: f"{state.id} was created" if isinstance(state, Customer) else "no new customer with this email",
            action=f"create a customer for {email}",
            check=f"find_customers_by_email(email='{email}')",
            **stripe_proof(app),
        )
    except BadRequestError as exc:
        if not (derived and exc.type == "idempotency_error"):
            raise
        # Our derived key was used in this window with other details: another request created a customer
        # with this email moments ago (then it exists now), or one that has since been deleted.
        now = await existing_customers(app, email)
        if now:
            raise OutcomeError(  # our refusal, audited as one (not as the idempotency error it follows)
                f"another request created a customer with this email moments ago: {', '.join(now)}. "
                "Use that customer, or pass allow_duplicate_email=true. Nothing was created.",
                outcome="refused",
            ) from None
        return await _fresh_create(app, params, email, existing, "an earlier customer with this email was deleted")
    if isinstance(proof.state, Customer):
        return Created(proof.state, note=" ".join(proof.notes), audit=proof.audit_outcome)
    assert proof.answer is not None
    customer = proof.answer
    trace = stripe.last_trace
    if not stripe.last_replayed:
        return _verified(customer, email, Created(customer))
    if trace is not None and trace.earlier_attempt_may_have_committed:
        return _verified(customer, email, Created(
            customer,
            replayed=True,
            note="created by this call: the first answer was lost and the retry returned it (idempotent replay).",
            audit="ok (created; first answer lost, retry replayed it)",
        ))  # fmt: skip
    current = await stripe.retrieve_customer(customer.id)
    if current.deleted:  # the replay of a create whose customer was deleted since: a new create must create
        return await _fresh_create(app, params, email, existing, f"the replayed {customer.id} was deleted")
    age = f" {int(time.time() - customer.created)}s ago" if customer.created else ""
    return _verified(current, email, Created(
        current,
        replayed=True,
        note=(f"no new customer was created: Stripe returned {customer.id}, made{age} by an earlier request with "
              f"the same idempotency key{' (another process or call creating this email)' if derived else ''}."),
        audit=f"ok (replay of an earlier create: {customer.id})",
    ))  # fmt: skip


async def _fresh_create(app: Any, params: dict[str, Any], email: str, existing: list[str], why: str) -> Created:
    """A create with a new key, proven like the first one (a lost answer here is read back too)."""
    created = await create_once(app, params, email, f"sim-{uuid.uuid4()}", True, existing)
    created.audit = f"{created.audit} (new key: {why})"
    return created


def _verified(customer: Customer, email: str, created: Created) -> Created:
    if customer.deleted or customer.email != email:
        raise UnexpectedResponseError(
            f"Stripe answered the create with {customer.id}, which is "
            + ("deleted" if customer.deleted else "not a customer with this email")
            + ": the outcome is not proven",
            hint=f"check with find_customers_by_email(email='{email}') before trying again",
        )
    return created


DELETE_GATE = confirm_resolver("customer_id", _delete_preview, action="deleted")
def removes_all_metadata(metadata: dict[str, str], unset: list[str] | None, clear_all: bool) -> bool:
    """clear_all_metadata, or a metadata_unset that lists every key there is: both clear everything."""
    return clear_all or (bool(metadata) and bool(unset) and set(metadata) <= set(unset or []))


async def _clears_all(ctx: Context, kwargs: dict[str, Any]) -> bool:
    if kwargs.get("clear_all_metadata"):
        return True
    if not kwargs.get("metadata_unset"):
        return False
    try:
        current = await deps(ctx).stripe.retrieve_customer(str(kwargs.get("customer_id")))
    except StripeIdentityError:
        return True  # cannot tell: ask (the preview then reports the failure): never fail open
    return removes_all_metadata(current.metadata, kwargs.get("metadata_unset"), False)


CLEAR_GATE = confirm_resolver(
    "customer_id", _clear_preview, action="changed", when=_clears_all, when_args=("clear_all_metadata", "metadata_unset")
)






@tool(WRITE)
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
        async with email_lock(app, email):  # pre-flight and create are one step per email in this process
            existing = await existing_customers(app, email)
            if existing and not allow_duplicate_email:
                raise ToolError(
                    f"a customer with this email already exists in {app.mode_label} mode: {', '.join(existing)}. "
                    "Use that customer, or pass allow_duplicate_email=true to create another. Nothing was created."
                )
            params = drop_none({"email": email, "name": name, "phone": phone, "description": description,
                                "address": address or None, "metadata": metadata or None})  # fmt: skip
            created = await create_once(app, params, email, idempotency_key, allow_duplicate_email, existing)
        entry.target = created.customer.id
        entry.outcome = created.audit
    warnings = []
    if existing:
        warnings.append(f"{len(existing)} other customer(s) have this email: {', '.join(x.split()[0] for x in existing[:10])}")
    return CustomerWrite(
        mode=app.mode_label,
        customer=summarize(created.customer, "full"),
        replayed=created.replayed or None,
        note=created.note,
        warnings=warnings,
    )


@tool(WRITE_IDEMPOTENT)
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
    async with audit(ctx, "update_customer", customer_id, args) as entry:
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
        confirmed = require_confirmed(gate, action="changed")  # asks when every metadata key would go
        current = await app.stripe.retrieve_customer(customer_id)
        if current.deleted:
            raise ToolError(f"{customer_id} was deleted; deleted customers cannot be updated.")
        if not confirmed and removes_all_metadata(current.metadata, metadata_unset, clear_all_metadata):
            raise ToolError(  # the keys changed since the gate looked: never clear everything unconfirmed
                f"metadata_unset lists every metadata key of {customer_id}: that clears all metadata and needs "
                f"confirmation like clear_all_metadata: call again with confirm='{customer_id}'. Nothing was changed."
            )
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
        expected = {k: (None if v == "" else v) for k, v in fields.items()}

        gone_keys = set(current.metadata) if clear_all_metadata else set(metadata_unset or [])
        gone_keys -= set(metadata_set or {})

        def applied(c: Customer | str) -> bool:
            """The keys and fields this call touched hold; others may change concurrently (merge)."""
            if not isinstance(c, Customer) or c.id != customer_id or c.deleted:
                return False
            plain = all(getattr(c, k) == v for k, v in expected.items() if k != "address")
            addr = all(getattr(c.address, k, None) == (v or None) for k, v in (address or {}).items())
            meta = all(c.metadata.get(k) == v for k, v in (metadata_set or {}).items())
            return plain and addr and meta and not gone_keys & set(c.metadata)

        proof = await prove(
            lambda: app.stripe.update_customer(customer_id, params),
            proves=applied,
            read_back=lambda: app.stripe.retrieve_customer(customer_id),
            settled=applied,
            describe=lambda c: "the change is in place" if applied(c) else "the customer does NOT show the change",
            action=f"update customer {customer_id}",
            check=f"get_customer(customer_id='{customer_id}')",
            **stripe_proof(app),
        )
        entry.outcome = proof.audit_outcome
        updated = proof.answer if proof.state is None else proof.state
        assert isinstance(updated, Customer)
        warnings += proof.notes
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


@tool(DESTRUCTIVE)
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
        proof = await prove(
            lambda: app.stripe.delete_customer(customer_id),
            proves=lambda c: c.id == customer_id and c.deleted,
            # Stripe still answers a deleted customer's id, with `deleted: true`: the read-back is proof.
            read_back=lambda: app.stripe.retrieve_customer(customer_id),
            settled=lambda c: isinstance(c, Customer) and c.deleted,
            describe=lambda c: "it is deleted" if isinstance(c, Customer) and c.deleted else "it still EXISTS",
            action=f"delete customer {customer_id}",
            check=f"get_customer(customer_id='{customer_id}')",
            **stripe_proof(app),
        )
        entry.outcome = proof.audit_outcome
    lost = " The first answer was lost; the retry found it already deleted by that first attempt." if proof.lost_answer else ""
    return CustomerDeleted(
        mode=app.mode_label,
        id=customer_id,
        deleted=True,
        cancelled_subscriptions=subs or [],
        note="Deletion is permanent: the customer cannot be restored or updated"
        + (f"; {len(subs)} subscription(s) were cancelled immediately." if subs else ".")
        + (" Any subscriptions were cancelled too (this key could not list them)." if subs is None else "")
        + lost,
        warnings=[n for n in proof.notes if not proof.lost_answer],
    )


def _deleted_hint(customer_id: str) -> Any:
    def hint(exc: StripeIdentityError) -> ToolError | None:
        if isinstance(exc, NotFoundError) and "similar object" not in exc.message:
            return ToolError(f"{customer_id} does not exist (or was already deleted) in this mode. Nothing was deleted.")
        return None

    return hint


TOOLSET = Toolset(
    name="customers",
    description="Customer writes: create (one per email), update, delete.",
    write=(create_customer, update_customer, delete_customer),
)
