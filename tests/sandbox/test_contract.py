"""Sandbox responses validate against Stripe's OpenAPI subset (tests/data/stripe_openapi/, shipped in the repo)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # a test extra: when missing, the contract test fails rather than skipping
import pytest
import referencing
from referencing.jsonschema import DRAFT202012

from stripe_identity_mcp.sandbox.seed import ACCT_JANE_ID, JANE_ID, LEE_ID
from stripe_identity_mcp.settings import DEFAULT_API_VERSION
from tests import loopback

from .conftest import RK_KEY, client

# The spec ships with the tests (provenance and cut script beside it), so a fresh clone checks the
# contract; a missing file is a failure, never a skip.
SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "stripe_openapi" / "openapi-subset.json"


def _convert(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema 2020-12: ``nullable: true`` becomes a null union."""
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items() if not k.startswith("x-")}
    if out.pop("nullable", False):
        if "type" in out and not any(k in out for k in ("anyOf", "oneOf", "allOf", "$ref")):
            t = out["type"]
            out["type"] = [t, "null"] if isinstance(t, str) else list(t) + ["null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    assert SPEC_PATH.is_file(), f"the OpenAPI subset is missing at {SPEC_PATH}: restore it from git"
    return _convert(json.loads(SPEC_PATH.read_text()))


def test_spec_is_the_pinned_cut() -> None:
    assert SPEC_PATH.is_file(), f"the OpenAPI subset is missing at {SPEC_PATH}: restore it from git"
    raw = json.loads(SPEC_PATH.read_text())
    assert raw["info"]["version"] == DEFAULT_API_VERSION  # the API version our models and sandbox speak
    assert "/v1/customers/{customer}" in raw["paths"] and "customer" in raw["components"]["schemas"]


@pytest.fixture(scope="module")
def registry(spec: dict[str, Any]) -> Any:
    resource = DRAFT202012.create_resource(spec)
    return referencing.Registry().with_resource("urn:stripe-openapi", resource)


def validate(registry: Any, schema: dict[str, Any], instance: Any) -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **_rebase(schema)}
    validator = jsonschema.Draft202012Validator(schema, registry=registry, format_checker=None)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        msgs = "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
        pytest.fail(f"{len(errors)} schema errors:\n{msgs}")


def _rebase(node: Any) -> Any:
    if isinstance(node, list):
        return [_rebase(x) for x in node]
    if isinstance(node, dict):
        return {k: ("urn:stripe-openapi" + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in node.items()}
    return node


def response_schema(spec: dict[str, Any], path: str, method: str, status: str = "200") -> dict[str, Any]:
    op = spec["paths"][path][method]
    resp = op["responses"].get(status) or op["responses"]["default"]
    return copy.deepcopy(resp["content"]["application/json"]["schema"])


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    assert r.headers["request-id"].startswith("req_")
    return r.json()


def test_customer_shapes(api: httpx.Client, spec, registry) -> None:
    body = ok(api.get(f"/v1/customers/{JANE_ID}"))
    validate(registry, response_schema(spec, "/v1/customers/{customer}", "get"), body)
    validate(registry, ref("customer"), body)
    expanded = ok(api.get(f"/v1/customers/{JANE_ID}", params={"expand[]": ["subscriptions", "invoice_settings.default_payment_method"]}))
    validate(registry, ref("customer"), expanded)
    assert expanded["subscriptions"]["data"], "jane has an active subscription"
    assert expanded["invoice_settings"]["default_payment_method"]["object"] == "payment_method"
    created = ok(api.post("/v1/customers", data={
        "email": "contract@example.com", "name": "Contract Test", "phone": "+15555550100",
        "address[line1]": "1 Main St", "address[city]": "Austin", "address[country]": "US",
        "shipping[name]": "C T", "shipping[address][line1]": "2 Side St",
        "metadata[k]": "v", "preferred_locales[]": "en",
    }))
    validate(registry, response_schema(spec, "/v1/customers", "post"), created)
    updated = ok(api.post(f"/v1/customers/{created['id']}", data={"description": "x", "address": ""}))
    validate(registry, response_schema(spec, "/v1/customers/{customer}", "post"), updated)


def test_deleted_customer_shapes(api: httpx.Client, spec, registry) -> None:
    body = ok(api.get(f"/v1/customers/{LEE_ID}"))
    assert body == {"id": LEE_ID, "object": "customer", "deleted": True}
    validate(registry, response_schema(spec, "/v1/customers/{customer}", "get"), body)
    validate(registry, ref("deleted_customer"), body)
    created = ok(api.post("/v1/customers", data={"email": "gone@example.com"}))
    deleted = ok(api.delete(f"/v1/customers/{created['id']}"))
    validate(registry, response_schema(spec, "/v1/customers/{customer}", "delete"), deleted)


def test_list_and_search_shapes(api: httpx.Client, spec, registry) -> None:
    lst = ok(api.get("/v1/customers", params={"limit": 100}))
    assert len(lst["data"]) == 100
    validate(registry, response_schema(spec, "/v1/customers", "get"), lst)
    res = ok(api.get("/v1/customers/search", params={"query": "name~'son'", "limit": 20, "expand[]": "total_count"}))
    assert res["data"]
    validate(registry, response_schema(spec, "/v1/customers/search", "get"), res)
    assert res["next_page"] is None or isinstance(res["next_page"], str)


def test_payment_method_shapes(api: httpx.Client, spec, registry) -> None:
    cus = ok(api.post("/v1/customers", data={"email": "pm-contract@example.com"}))
    pm = ok(api.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": cus["id"]}))
    validate(registry, response_schema(spec, "/v1/payment_methods/{payment_method}/attach", "post"), pm)
    got = ok(api.get(f"/v1/payment_methods/{pm['id']}"))
    validate(registry, response_schema(spec, "/v1/payment_methods/{payment_method}", "get"), got)
    lst = ok(api.get(f"/v1/customers/{cus['id']}/payment_methods", params={"type": "card"}))
    validate(registry, response_schema(spec, "/v1/customers/{customer}/payment_methods", "get"), lst)
    det = ok(api.post(f"/v1/payment_methods/{pm['id']}/detach"))
    validate(registry, response_schema(spec, "/v1/payment_methods/{payment_method}/detach", "post"), det)
    assert det["customer"] is None


def test_portal_shapes(api: httpx.Client, spec, registry) -> None:
    sess = ok(api.post("/v1/billing_portal/sessions", data={"customer": JANE_ID, "return_url": "https://example.com/account"}))
    validate(registry, response_schema(spec, "/v1/billing_portal/sessions", "post"), sess)
    confs = ok(api.get("/v1/billing_portal/configurations"))
    assert len(confs["data"]) == 1
    validate(registry, response_schema(spec, "/v1/billing_portal/configurations", "get"), confs)


def test_account_shapes(api: httpx.Client, spec, registry) -> None:
    acct = ok(api.get(f"/v1/accounts/{ACCT_JANE_ID}"))
    validate(registry, response_schema(spec, "/v1/accounts/{account}", "get"), acct)
    lst = ok(api.get("/v1/accounts", params={"limit": 100}))
    assert len(lst["data"]) >= 30
    validate(registry, response_schema(spec, "/v1/accounts", "get"), lst)
    for a in lst["data"]:
        validate(registry, ref("account"), a)


def test_error_shapes(sandbox, api: httpx.Client, spec, registry) -> None:
    schema = response_schema(spec, "/v1/customers/{customer}", "get", "default")
    bodies = [
        api.get("/v1/customers/cus_doesnotexist00"),
        api.get("/v1/customers", params={"limit": 0}),
        api.get("/v1/customers", params={"foo": "bar"}),
        api.get("/v1/customers/search", params={"query": "bogus:'x'"}),
        api.post("/v1/customers", data={"metadata[" + "k" * 41 + "]": "v"}),
        api.post("/v1/customers", headers={"Idempotency-Key": "contract-1"}, data={"name": "a"}),
        api.post("/v1/customers", headers={"Idempotency-Key": "contract-1"}, data={"name": "b"}),
        api.get("/v1/nope"),
    ]
    with client(sandbox, None) as anon:
        bodies.append(anon.get("/v1/customers"))
    with client(sandbox, "sk_test_bogus1234567890") as bad:
        bodies.append(bad.get("/v1/customers"))
    with client(sandbox, RK_KEY) as rk:
        bodies.append(rk.post("/v1/customers", data={"name": "x"}))
    statuses = [r.status_code for r in bodies]
    assert statuses == [404, 400, 400, 400, 400, 200, 400, 404, 401, 401, 403]
    for r in bodies[:5] + bodies[6:]:
        validate(registry, schema, r.json())
        assert r.headers["request-id"].startswith("req_")


def test_fidelity_answers_validate(sandbox, api: httpx.Client, spec, registry) -> None:
    """Expanded sources/tax_ids are the spec's list shapes; the new 400s and 429s are Stripe error bodies."""
    expanded = ok(api.get(f"/v1/customers/{JANE_ID}", params={"expand[]": ["sources", "tax_ids"]}))
    validate(registry, ref("customer"), expanded)
    customer = spec["components"]["schemas"]["customer"]["properties"]
    validate(registry, customer["sources"], expanded["sources"])
    validate(registry, customer["tax_ids"], expanded["tax_ids"])
    schema = response_schema(spec, "/v1/customers/{customer}", "get", "default")
    bad_version = api.get(f"/v1/customers/{JANE_ID}", headers={"Stripe-Version": "2019-2-19"})
    bad_type = api.get(f"/v1/customers/{JANE_ID}/payment_methods", params={"type": "bogus"})
    loopback.post(f"{sandbox.base_url}/_sandbox/faults", json={"rules": [{"kind": "lock_timeout", "path": f"/v1/customers/{JANE_ID}"}]})
    locked = api.get(f"/v1/customers/{JANE_ID}")
    assert [r.status_code for r in (bad_version, bad_type, locked)] == [400, 400, 429]
    for r in (bad_version, bad_type, locked):
        validate(registry, schema, r.json())
