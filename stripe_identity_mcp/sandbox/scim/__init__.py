"""In-memory emulator of Stripe's SCIM 2.0 endpoint for Dashboard team members.

Mounted by the sandbox at ``/scim/v2``; every path below is relative to that mount point.

What it reproduces from Stripe's SCIM guide
-------------------------------------------
* Bearer SCIM token (``Authorization: Bearer <token>``); a missing or wrong token gets a SCIM
  401 error with ``WWW-Authenticate: Bearer``. The token is never echoed.
* ``userName`` is the member's email and the unique identifier (uniqueness ``server``, compared
  case-insensitively as RFC 7643 makes ``userName`` ``caseExact: false``). Email updates are not
  supported: a PUT or PATCH that changes ``userName`` gets 400 ``mutability`` ("deprovision and
  re-provision the user"). The published schema therefore declares ``userName`` ``immutable``.
  The emulator does not validate the email *format* of ``userName`` (conformance suites post
  random strings).
* Only ``id``, ``userName``, ``displayName``, ``active`` and ``meta`` drive behaviour. ``name``,
  ``emails`` and the common attribute ``externalId`` (RFC 7643 §3.1; identity providers use it to
  correlate) are accepted on input, stored and echoed back verbatim (so standard clients and
  conformance suites round-trip them) but never change identity or access. Other RFC 7643 User
  attributes (``title``, ``nickName``, ``phoneNumbers``, enterprise extension, ...) are accepted
  and silently dropped; a wholly unknown PATCH path is 400 ``invalidPath``.
* Roles are never set over SCIM: any ``roles`` attribute (POST, PUT or PATCH) is rejected with
  400 ``invalidValue``. Stripe decides roles from SAML attribute statements at sign-in, or from the
  Dashboard's mapping of a SCIM-synced group to roles (Settings → Team and security → Groups); that
  mapping is not visible over SCIM.
* A newly provisioned member has no permissions until their first SSO sign-in (``active`` defaults
  to ``true`` on POST; that only means "may sign in").
* Groups: ``/Groups`` (see ``groups.py``: group names cannot be updated, displayName unique,
  members are Users). Users carry a read-only ``groups`` attribute computed from the groups (always
  present, ``[]`` for none — an emulator choice: Stripe does not document it), and a
  deleted (or, by default, deactivated) user leaves every group. ``bulk``, ``sort`` and
  ``changePassword`` are ``false`` in ``/ServiceProviderConfig``.

Emulator choices
----------------
* Deactivation deletes, as Stripe's guide says ("deactivating a user deletes it"): a PATCH or PUT
  that leaves the member ``active: false`` removes the member and answers 204 No Content, exactly
  like ``DELETE`` (subsequent GET → 404, gone from lists). Either way Dashboard access is revoked at
  once. ``keep_inactive=True`` (``SandboxConfig.scim_keep_inactive``, CLI ``--scim-keep-inactive``)
  keeps the usual-SCIM-server behaviour instead: the member stays visible with ``active: false`` and
  the PATCH/PUT answers 200 with the member. (A POST with ``active: false`` creates an inactive
  member in both modes; Stripe does not document that case.)
* PUT without ``active`` keeps the current value (a PUT never silently re-grants access); other
  omitted readWrite attributes are cleared. PATCH ``remove`` of ``active`` leaves it unassigned.
* ``op`` is case-insensitive ("Replace" from Entra); ``"True"``/``"False"`` strings for boolean
  attributes are accepted (Entra quirk); a path-less PATCH value may use dotted keys
  (``{"name.givenName": "x"}``).
* A ``replace`` through a value filter that matches nothing (``emails[type eq "x"].value``) is
  400 ``noTarget`` as RFC 7644 §3.5.2.3 says; ``add`` through such a filter creates the element.
* ETags: ``meta.version`` is a weak ETag, sent as the ``ETag`` header; ``If-Match`` on
  PUT/PATCH/DELETE (mismatch → 412 ``preconditionFailed`` style error) and ``If-None-Match`` on
  GET (→ 304) are honoured.
* Filters: ``eq ne co sw ew gt ge lt le pr``, ``and``/``or``/``not(...)`` and parentheses over
  ``id``, ``userName``, ``displayName``, ``active``, ``name.*``, ``emails.*`` (``emails`` alone
  means ``emails.value``) and ``meta.created``/``meta.lastModified``/``meta.resourceType``.
  Anything else (unknown attribute, value-path brackets, syntax error) → 400 ``invalidFilter``.
* Listing: stable order by creation time; ``startIndex`` 1-based (<1 → 1); ``count`` default and
  maximum 100 (negative → 0; 0 → only ``totalResults``). ``sortBy`` is ignored (sort unsupported).
  ``attributes``/``excludedAttributes`` are honoured (``id`` and ``schemas`` are always returned).
  ``POST /Users/.search`` and ``POST /.search`` (Users and Groups) are supported.

Layout, one concern a module: ``protocol`` (wire: schemas, errors, bodies, ETags), ``values``
(attribute names and normalisation), ``schemas`` (discovery documents, resource types), ``filters``,
``projection``, ``patch`` (the PATCH engine), ``store``, ``resources`` + ``users`` + ``groups`` (each
type's rules), ``routes`` (one collection/item router for every type, ``/.search``, discovery),
``seed`` and ``server`` (``ScimSandbox``: auth and dispatch).

Seed (unless ``empty``): 12 members drawn deterministically from ``seed`` plus every email of
``shared_emails`` (default: the four shared demo people). About a third of the drawn members and
``jane@acme.com`` ("Jane Doe", a removed member) are inactive; inactive members exist only under
``keep_inactive`` (by default they were deleted when deactivated, as on Stripe, so the default seed
holds the active ones only, with the same ids). ``omar@globex.com``, ``priya@umbrella.com`` and
``lee@initech.com`` are active in both modes. Three groups are seeded (``SEED_GROUPS`` in
``seed.py``): Support (jane, omar), Developers (lee, priya), Admins (jane, priya), plus drawn
members in Support and Developers; jane is in them only where she exists (``keep_inactive``).
The shared people have seed-independent ids (uuid5 of their email, see ``SCIM_FIXED_IDS``).
"""

from .groups import Groups
from .seed import SCIM_FIXED_IDS, SEED_GROUPS, SHARED_SCIM_MEMBERS, group_id_for, scim_id_for
from .server import ScimSandbox
from .users import Users

__all__ = ["SCIM_FIXED_IDS", "SEED_GROUPS", "SHARED_SCIM_MEMBERS", "Groups", "ScimSandbox", "Users", "group_id_for", "scim_id_for"]
