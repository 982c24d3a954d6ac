"""Card-number detection: every Stripe test card is refused, timestamps / phones / order ids are not."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stripe_identity_mcp.cards import TOO_MANY_GROUPS, card_brand, find_card_numbers, luhn_ok, mask_card
from tests.conftest import make_settings, mcp_client

# Every card number on https://docs.stripe.com/testing (cards by brand, co-branded, by country,
# declines, fraud, disputes, refunds, available balance, 3D Secure, PINs), plus the Diners numbers
# of earlier versions of that page. Left out on purpose: 4242424242424241, the "incorrect_number"
# card, which exists to fail the Luhn check (a Luhn-invalid 16-digit number is an ordinary number).
STRIPE_TEST_CARDS = {
    "visa": "4242424242424242", "visa_debit": "4000056655665556", "mastercard": "5555555555554444",
    "mastercard_2series": "2223003122003222", "mastercard_debit": "5200828282828210",
    "mastercard_prepaid": "5105105105105100", "amex": "378282246310005", "amex_2": "371449635398431",
    "discover": "6011111111111117", "discover_2": "6011000990139424", "discover_debit": "6011981111111113",
    "diners": "3056930009020004", "diners_14": "36227206271667", "bccard_dinacard": "6555900000604105",
    "jcb": "3566002020360505", "unionpay": "6200000000000005", "unionpay_debit": "6200000000000047",
    "unionpay_19": "6205500000000000004",
    "cartes_bancaires_visa": "4000002500001001", "cartes_bancaires_mastercard": "5555552500001001",
    "eftpos_au_visa": "4000050360000001", "eftpos_au_mastercard": "5555050360000080",
    # by country: Americas
    "us": "4242424242424242", "ar": "4000000320000021", "br": "4000000760000002", "ca": "4000001240000000",
    "cl": "4000001520000001", "co": "4000001700000003", "cr": "4000001880000005", "ec": "4000002180000000",
    "mx": "4000004840008001", "pa": "4000005910000000", "py": "4000006000000066", "pe": "4000006040000068",
    "uy": "4000008580000003",
    # Europe and Middle East
    "ae": "4000007840000001", "ae_mastercard": "5200007840000022", "at": "4000000400000008",
    "be": "4000000560000004", "bg": "4000001000000000", "by": "4000001120000005", "hr": "4000001910000009",
    "cy": "4000001960000008", "cz": "4000002030000002", "dk": "4000002080000001", "ee": "4000002330000009",
    "fi": "4000002460000001", "fr": "4000002500000003", "de": "4000002760000016", "gi": "4000002920000005",
    "gr": "4000003000000030", "hu": "4000003480000005", "ie": "4000003720000005", "it": "4000003800000008",
    "lv": "4000004280000005", "li": "4000004380000004", "lt": "4000004400000000", "lu": "4000004420000006",
    "mt": "4000004700000007", "nl": "4000005280000002", "no": "4000005780000007", "pl": "4000006160000005",
    "pt": "4000006200000007", "ro": "4000006420000001", "sa": "4000006820000007", "si": "4000007050000006",
    "sk": "4000007030000001", "es": "4000007240000007", "se": "4000007520000008", "ch": "4000007560000009",
    "gb": "4000008260000000", "gb_debit": "4000058260000005", "gb_mastercard": "5555558265554449",
    # Asia Pacific
    "au": "4000000360000006", "cn": "4000001560000002", "hk": "4000003440000004", "in": "4000003560000008",
    "jp": "4000003920000003", "jp_jcb": "3530111333300000", "my": "4000004580000002", "nz": "4000005540000008",
    "sg": "4000007020000003", "tw": "4000001580000008", "th_credit": "4000007640000003",
    "th_debit": "4000057640000008",
    # declines
    "generic_decline": "4000000000000002", "insufficient_funds": "4000000000009995", "lost_card": "4000000000009987",
    "stolen_card": "4000000000009979", "expired_card": "4000000000000069", "incorrect_cvc": "4000000000000127",
    "processing_error": "4000000000000119", "velocity_exceeded": "4000000000006975",
    "decline_after_attaching": "4000000000000341",
    # fraud prevention
    "always_blocked": "4100000000000019", "highest_risk": "4000000000004954", "elevated_risk": "4000000000009235",
    "cvc_check_fails": "4000000000000101", "postal_code_check_fails": "4000000000000036",
    "line1_check_fails": "4000000000000028", "address_checks_fail": "4000000000000010",
    "address_unavailable": "4000000000000044",
    # disputes, refunds, available balance
    "dispute_fraudulent": "4000000000000259", "dispute_not_received": "4000000000002685",
    "dispute_inquiry": "4000000000001976", "early_fraud_warning": "4000000000005423",
    "multiple_disputes": "4000000404000079", "refund_async_success": "4000000000007726",
    "refund_async_failure": "4000000000005126", "bypass_pending": "4000000000000077",
    "bypass_pending_international": "4000003720000278",
    # 3D Secure
    "3ds_authenticate_unless_set_up": "4000002500003155", "3ds_always_authenticate": "4000002760003184",
    "3ds_already_set_up": "4000003800000446", "3ds_insufficient_funds": "4000008260003178",
    "3ds_required_ok": "4000000000003220", "3ds_required_declined": "4000008400001629",
    "3ds_required_error": "4000008400001280", "3ds_supported_ok": "4000000000003055",
    "3ds_supported_error": "4000000000003097", "3ds_otp": "4000000000003238", "3ds_single_select": "4000000000003246",
    "3ds_multi_select": "4000000000003253",
    # PINs (Terminal)
    "offline_pin": "4001007020000002", "offline_pin_retry": "4000008260000075", "online_pin": "4001000360000005",
    "online_pin_retry": "4000002760000008",
    # earlier versions of the page
    "diners_14_old": "30569309025904", "diners_14_old_2": "38520000023237", "visa_old": "4012888888881881",
}  # fmt: skip


def grouped(digits: str) -> str:
    """How people type them: 4-4-4-4, Amex 4-6-5, others in fours."""
    if len(digits) == 15:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


@pytest.mark.parametrize("name", sorted(STRIPE_TEST_CARDS))
def test_every_stripe_test_card_is_found(name):
    digits = STRIPE_TEST_CARDS[name]
    assert card_brand(digits) is not None and luhn_ok(digits)
    for text in (digits, grouped(digits), grouped(digits).replace(" ", "-"), f"pay with {grouped(digits)} pls"):
        assert find_card_numbers(text) == [mask_card(digits)], text


# 13-digit millisecond timestamps from 2001-09-09 to 2096-10-02 (1e12 .. 4e12): no brand has a
# 13-digit number starting with 1, 2 or 3, so none of them can be "a card", Luhn or not.
MS_TIMESTAMPS = st.integers(min_value=10**12, max_value=4 * 10**12 - 1).map(str)


@given(MS_TIMESTAMPS)
def test_millisecond_timestamps_are_not_cards(stamp):
    assert find_card_numbers(stamp) == []
    assert find_card_numbers(f"created {stamp} ms") == []


@given(st.sampled_from("0179"), st.text(alphabet="0123456789", min_size=11, max_size=17))
def test_luhn_valid_numbers_without_a_brand_prefix_are_not_cards(first, rest):
    """No brand starts with 0, 1, 7 or 9: such a number is never a card, even when it passes Luhn."""
    digits = next(first + rest + c for c in "0123456789" if luhn_ok(first + rest + c))
    assert find_card_numbers(digits) == []


@pytest.mark.parametrize(
    "text",
    [
        "1764619200009",  # the timestamp: Luhn-valid, 13 digits, starts with 1
        "1700000000000", "1733011200000", "2524608000000",
        "+1 415 555 2671", "call +1 415-555-2671", "0044 20 7946 0958", "+44 20 7946 0958",
        "2024120100012345", "order 2024120100012345", "ORD-2024-1201-0001-2345",
        "1234567890123",  # 13 digits, Luhn-invalid anyway
        "ids cus_Q1 and pm_card_visa",
    ],
)  # fmt: skip
def test_timestamps_phones_and_order_ids_pass(text):
    assert find_card_numbers(text) == []


def test_a_luhn_valid_number_with_a_visa_or_mastercard_prefix_is_a_card():
    """Deliberate: an "order id" 4024…/5124… that passes Luhn is indistinguishable from a card."""
    for body in ("402412010001234", "512412010001234"):
        digits = next(body + c for c in "0123456789" if luhn_ok(body + c))
        assert find_card_numbers(f"order {digits}") == [mask_card(digits)]


def test_digits_in_other_scripts_are_still_cards():
    full_width = "".join(chr(0xFF10 + int(c)) for c in "4242424242424242")
    assert find_card_numbers(full_width) == ["4242 **** **** 4242"]


# --- through the MCP client ------------------------------------------------------------------------
TIMESTAMP = "1764619200009"


@pytest.mark.anyio
async def test_timestamp_passes_in_email_description_and_metadata(empty_sandbox, tmp_path):
    """The issue's false alarm: the customer is created, with the values as given."""
    settings = make_settings(empty_sandbox, allow_writes=True, scim_token=None, audit_log=tmp_path / "a.jsonl")
    async with mcp_client(settings) as client:
        r = await client.call_tool(
            "create_customer",
            {
                "email": f"order-{TIMESTAMP}@example.com",
                "description": f"imported at {TIMESTAMP}",
                "phone": "+1 415 555 2671",
                "metadata": {"order_id": TIMESTAMP, "ref": "2024120100012345"},
            },
        )
    assert not r.is_error, r.content[0].text
    store = empty_sandbox.sandbox.stores["test"]
    (rec,) = [c for c in store.customers.values() if c.get("email") == f"order-{TIMESTAMP}@example.com"]
    assert rec["description"] == f"imported at {TIMESTAMP}" and rec["metadata"]["order_id"] == TIMESTAMP


@pytest.mark.anyio
async def test_every_stripe_test_card_is_refused_by_a_write_and_a_read(empty_sandbox, tmp_path):
    """Nothing reaches the sandbox; the answer names the argument and never holds the number."""
    settings = make_settings(empty_sandbox, allow_writes=True, scim_token=None, audit_log=tmp_path / "a.jsonl")
    before = empty_sandbox.sandbox.requests
    async with mcp_client(settings) as client:
        for name, digits in sorted(set(STRIPE_TEST_CARDS.items())):
            for tool, args, argument in (
                ("create_customer", {"email": f"{name}@example.com", "description": grouped(digits)}, "description"),
                ("search_customers", {"name_contains": f"card {digits}"}, "name_contains"),
            ):
                r = await client.call_tool(tool, args)
                text = r.content[0].text
                assert r.is_error and f"argument '{argument}'" in text and "Nothing was sent to Stripe" in text, text
                assert digits not in text.replace(" ", "") and digits[4:-4] not in text, text
    assert empty_sandbox.sandbox.requests == before
    assert not empty_sandbox.sandbox.stores["test"].customers


def test_stamp_range_is_what_the_comment_says():
    assert datetime.fromtimestamp(10**12 / 1000, UTC).year == 2001
    assert datetime.fromtimestamp(4 * 10**12 / 1000, UTC).year == 2096


def test_a_flood_of_digit_groups_is_refused_quickly_not_scanned_forever():
    """10 MB of "4 4 4 …" has millions of candidate windows: bounded work, and refused as card-like."""
    started = time.perf_counter()
    assert find_card_numbers("4 " * 1_000_000) == [TOO_MANY_GROUPS]
    assert find_card_numbers("1 " * 1_000_000) == []  # no brand starts with 1: nothing to check
    flood = find_card_numbers("order 4242 4242 4242 4242, then " + "4 " * 1_000_000)
    assert flood == ["4242 **** **** 4242", TOO_MANY_GROUPS]
    assert time.perf_counter() - started < 30  # was minutes (quadratic-ish windows, pure Python)
