"""The SCIM seed: the shared demo people (seed-independent ids), drawn members and three groups.

Unless ``empty``: 12 members drawn deterministically from ``seed`` plus every email of
``shared_emails`` (default: the four shared demo people). About a third of the drawn members and
``jane@acme.com`` ("Jane Doe", a removed member) are inactive; inactive members exist only under
``keep_inactive`` (by default they were deleted when deactivated, as on Stripe, so the default seed
holds the active ones only, with the same ids). Groups (``SEED_GROUPS``): Support (jane, omar),
Developers (lee, priya), Admins (jane, priya), plus drawn members in Support and Developers; jane is
in them only where she exists (``keep_inactive``).
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from .groups import Groups
from .protocol import USER_SCHEMA, etag
from .users import Users

_ID_NAMESPACE = uuid.UUID("6f1c9a52-3b1e-4c41-9d55-5a8f0e4b2c10")
_GROUP_ID_NAMESPACE = uuid.UUID("0b7d3c1e-9a4f-4e55-8c1a-2f6d5e7a9b30")


def scim_id_for(email: str) -> str:
    """Seed-independent SCIM id of a shared demo person (uuid5 of the lower-cased email)."""
    return str(uuid.uuid5(_ID_NAMESPACE, email.strip().lower()))


def group_id_for(name: str) -> str:
    """Seed-independent id of a seeded group (uuid5 of its lower-cased name)."""
    return str(uuid.uuid5(_GROUP_ID_NAMESPACE, name.strip().lower()))


# email -> (displayName, given, family, active)
SHARED_SCIM_MEMBERS: dict[str, tuple[str, str, str, bool]] = {
    "jane@acme.com": ("Jane Doe", "Jane", "Doe", False),
    "omar@globex.com": ("Omar Haddad", "Omar", "Haddad", True),
    "priya@umbrella.com": ("Priya Raman", "Priya", "Raman", True),
    "lee@initech.com": ("Lee Chen", "Lee", "Chen", True),
}
SCIM_FIXED_IDS: dict[str, str] = {email: scim_id_for(email) for email in SHARED_SCIM_MEMBERS}

_FIRST = (
    "Ava Noah Mia Liam Zoe Ethan Nora Lucas Iris Mateo Hana Felix Ines Ravi Yuki Sofia Kenji Amara "
    "Leo Maya Omar Lena Arjun Chloe Diego Freya Tomas Aisha Jonas Clara"
).split()
_LAST = (
    "Nguyen Smith Garcia Muller Rossi Kowalski Tanaka Okafor Silva Jensen Novak Ahmed Cohen Park "
    "Dubois Larsen Moreau Singh Costa Ivanova"
).split()
_DOMAINS = ["acme.com", "globex.com", "umbrella.com", "initech.com", "hooli.com", "stark.io"]

# Seeded groups and the shared demo people in them (drawn seed members are spread over the first two).
SEED_GROUPS: dict[str, list[str]] = {
    "Support": ["jane@acme.com", "omar@globex.com"],
    "Developers": ["lee@initech.com", "priya@umbrella.com"],
    "Admins": ["jane@acme.com", "priya@umbrella.com"],
}


def seed(users: Users, groups: Groups, seed: int, shared_emails: list[str] | None) -> None:
    shared = list(SHARED_SCIM_MEMBERS) if shared_emails is None else list(shared_emails)
    seed_users(users, seed, shared)
    shared_low = {e.strip().lower() for e in shared}
    drawn = [u["id"] for u in users.store.sorted() if u["userName"].lower() not in shared_low]
    seed_groups(groups, users, drawn)


def seed_users(users: Users, seed: int, shared: list[str]) -> None:
    rng = random.Random(seed)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    people: list[tuple[str, str, str, str, bool, str]] = []
    taken: set[str] = set()
    for email in shared:
        low = email.strip().lower()
        if low in taken:
            continue
        taken.add(low)
        display, given, family, active = SHARED_SCIM_MEMBERS.get(
            low, (_display_from_email(email), "", "", True)
        )
        people.append((email.strip(), display, given, family, active, scim_id_for(email)))
    n_others = 12 - min(len(people), 4)
    while n_others > 0:
        given, family = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{given.lower()}.{family.lower()}@{rng.choice(_DOMAINS)}"
        if email in taken:
            continue
        taken.add(email)
        active = rng.random() < 0.7
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        people.append((email, f"{given} {family}", given, family, active, uid))
        n_others -= 1
    # Deterministic, distinct creation times spread over ~a year.
    offsets = sorted(rng.sample(range(0, 360 * 24), len(people)))
    order = list(range(len(people)))
    rng.shuffle(order)
    for slot, idx in zip(offsets, order, strict=True):
        email, display, given, family, active, uid = people[idx]
        if not active and not users.keep_inactive:
            continue  # deactivated on Stripe means deleted; skipping keeps the rng draws (and ids) unchanged
        created = (start + timedelta(hours=slot)).isoformat().replace("+00:00", "Z")
        user: dict[str, Any] = {
            "schemas": [USER_SCHEMA],
            "id": uid,
            "userName": email,
            "displayName": display,
            "active": active,
            "emails": [{"value": email, "type": "work", "primary": True}],
            "meta": {"resourceType": "User", "created": created, "lastModified": created},
        }
        if given or family:
            user["name"] = {k: v for k, v in (("givenName", given), ("familyName", family)) if v}
        user["meta"]["version"] = etag(user)
        users.store.add(user, created)


def _display_from_email(email: str) -> str:
    local = email.split("@", 1)[0]
    return " ".join(p.capitalize() for p in re.split(r"[._+-]+", local) if p) or email


def seed_groups(groups: Groups, users: Users, drawn: list[str]) -> None:
    """Seed groups with the shared people who exist and the drawn members (`drawn`: user ids)."""
    created = "2025-03-01T00:00:00Z"
    # By id, not position, so a drawn member is in the same group whether or not inactive ones exist.
    extra: dict[str, list[str]] = {"Support": [], "Developers": [], "Admins": []}
    for uid in drawn:
        slot = uuid.UUID(uid).int % 3
        if slot < 2:
            extra["Support" if slot == 0 else "Developers"].append(uid)
    for name, emails in SEED_GROUPS.items():
        uids = [u["id"] for e in emails if (u := users.by_email(e)) is not None] + extra[name]
        members = [groups.member(uid, None) for uid in uids]
        gid = group_id_for(name)
        groups.store.add(groups.finish(gid, {"displayName": name, "members": members}, created, created), created)
