"""Redaction finds personal data in complaint sentences and leaves everything else alone."""

from __future__ import annotations

import pytest

from triage.redaction import KINDS, Redaction, Redactor, luhn_valid

REDACTOR = Redactor()


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        (
            "Please call me at (555) 867-5309 or email jane.doe@example.com about card "
            "4111 1111 1111 1111.",
            "Please call me at [PHONE] or email [EMAIL] about card [CARD].",
            {"email": 1, "phone": 1, "card": 1},
        ),
        (
            "My SSN 123-45-6789 was on the letter",
            "My SSN [SSN] was on the letter",
            {"ssn": 1},
        ),
        (
            "account number 000123456789 was closed",
            "account number [ACCOUNT] was closed",
            {"account": 1},
        ),
    ],
)
def test_redacts_the_examples(text, expected, counts):
    result = REDACTOR.redact(text)
    assert result.text == expected
    assert result.counts == counts
    assert result.changed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Their agent said to call 555-867-5309 back.", "call [PHONE] back"),
        ("The New York office (+1 212 555 0143) hung up.", "office ([PHONE]) hung"),
        (
            "Their London office, +44 20 7946 0958, never called.",
            "office, [PHONE], never",
        ),
        ("Paris told me to ring +33 1 42 68 53 00 today.", "ring [PHONE] today"),
        ("I called 1-800-555-0199 six times.", "called [PHONE] six"),
        ("Reach me at 212.555.0143.", "at [PHONE]."),
        ("Call (212) 555-0143 ext. 12 after noon.", "Call [PHONE] after"),
        ("The number [+44 20 7946 0958] is theirs.", "number [[PHONE]] is"),
    ],
)
def test_redacts_phone_numbers(text, expected):
    result = REDACTOR.redact(text)
    assert expected in result.text
    assert result.counts == {"phone": 1}


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "3782 822463 10005",  # American Express, 15 digits
        "6011 1111 1111 1117",
    ],
)
def test_redacts_luhn_valid_card_numbers(card):
    result = REDACTOR.redact(f"They charged my card {card} twice.")
    assert result.text == "They charged my card [CARD] twice."
    assert result.counts == {"card": 1}


def test_card_followed_by_its_security_code_is_still_found():
    result = REDACTOR.redact("card 4111 1111 1111 1111 123 exp 09/27")
    assert result.text == "card [CARD] 123 exp 09/27"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My SSN 123-45-6789 was on the letter", "My SSN [SSN] was on"),
        ("They printed 123 45 6789 on the envelope.", "printed [SSN] on"),
        ("My social security number is 123456789.", "number is [SSN]."),
        ("SSN: 219099999 was used by someone else", "SSN: [SSN] was"),
        ("ss# 123456789", "ss# [SSN]"),
    ],
)
def test_redacts_social_security_numbers(text, expected):
    result = REDACTOR.redact(text)
    assert expected in result.text
    assert result.counts == {"ssn": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("account number 000123456789 was closed", "account number [ACCOUNT] was"),
        ("my acct # 12345678 shows a late fee", "acct # [ACCOUNT] shows"),
        ("Acct. No. 1234 5678 90 is mine", "Acct. No. [ACCOUNT] is"),
        ("routing number 021000021 is wrong", "routing number [ACCOUNT] is"),
        ("member number 12345678 at the credit union", "member number [ACCOUNT] at"),
        ("loan no. 987654321 was sold", "loan no. [ACCOUNT] was"),
        ("loan #987654321 was sold", "loan #[ACCOUNT] was"),
        ("a/c 11223344 was frozen", "a/c [ACCOUNT] was"),
        ("the account number is 55-1234-9876 per the letter", "is [ACCOUNT] per"),
    ],
)
def test_redacts_account_numbers_after_a_context_word(text, expected):
    result = REDACTOR.redact(text)
    assert expected in result.text
    assert result.counts == {"account": 1}


@pytest.mark.parametrize(
    "text",
    [
        # 16 digits failing the Luhn check are not a card.
        "The charge on 4111 1111 1111 1112 is not mine.",
        "Reference 1234 5678 9012 3456 was given to me.",
        # Amounts, dates, years, short numbers.
        "I paid $1,250.00 on 06/12/2023 and again in 2024.",
        "The balance of {$31000.00} was due XX/XX/2023.",
        "They owe me 125000 dollars since 2019.",
        "my account ending in 1234 was charged 3 times",
        "my account balance is 125000 and my account of $125000 is frozen",
        "account 125000.00 was moved on account 06-12-2023",
        "the account was open from 2019 to 2021, account 2019 2020",
        "Order 123456789 shipped on 2023-06-12.",
        # CFPB masks.
        "XXXX XXXX XXXX XXXX called me on XX/XX/2023 from ( XXXX ) XXXX-XXXX.",
        "account number XXXX, card XXXX XXXX XXXX 1234, email XXXX@XXXX.com",
        # Statute references.
        "In violation of 15 U.S.C. 1681 604 A and 15 USC 6802-6805.",
        # Invalid social security numbers.
        "000-12-3456 and 666-12-3456 and 900-12-3456",
        "123-00-4567 and 123-45-0000",
        "ssn 000123456",
    ],
)
def test_leaves_non_personal_numbers_alone(text):
    result = REDACTOR.redact(text)
    assert result.text == text
    assert result.counts == {}
    assert not result.changed


def test_text_with_nothing_to_redact_is_returned_unchanged():
    text = "I was charged a late fee twice and nobody answers the phone."
    result = REDACTOR.redact(text)
    assert result == Redaction(text, {})
    assert result.changed is False


def test_empty_text():
    assert REDACTOR.redact("") == Redaction("", {})


def test_every_other_character_is_kept_exactly():
    text = "Café – ring\n(555) 867-5309\tor  jane@example.com 😀\r\n  end  "
    result = REDACTOR.redact(text)
    assert result.text == "Café – ring\n[PHONE]\tor  [EMAIL] 😀\r\n  end  "


def test_counts_each_kind_in_kinds_order():
    text = (
        "Email a@example.com or b@example.org, call 555-867-5309, (212) 555-0143 or "
        "+44 20 7946 0958. Card 4111111111111111, SSN 123-45-6789, acct 12345678."
    )
    result = REDACTOR.redact(text)
    assert result.counts == {"email": 2, "phone": 3, "card": 1, "ssn": 1, "account": 1}
    assert list(result.counts) == [k for k in KINDS if k in result.counts]


SENTENCE = (
    "Please call me at (555) 867-5309 or email jane.doe@example.com about card "
    "4111 1111 1111 1111. My SSN 123-45-6789; account number 000123456789."
)


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (
            ["email"],
            "Please call me at (555) 867-5309 or email [EMAIL] about card "
            "4111 1111 1111 1111. My SSN 123-45-6789; account number 000123456789.",
        ),
        (
            "email",
            "Please call me at (555) 867-5309 or email [EMAIL] about card "
            "4111 1111 1111 1111. My SSN 123-45-6789; account number 000123456789.",
        ),
        (
            ("card", "ssn"),
            "Please call me at (555) 867-5309 or email jane.doe@example.com about card "
            "[CARD]. My SSN [SSN]; account number 000123456789.",
        ),
        (
            [],
            SENTENCE,
        ),
        (
            KINDS,
            "Please call me at [PHONE] or email [EMAIL] about card [CARD]. "
            "My SSN [SSN]; account number [ACCOUNT].",
        ),
    ],
)
def test_only_the_chosen_kinds_are_redacted(kinds, expected):
    assert Redactor(kinds=kinds).redact(SENTENCE).text == expected


@pytest.mark.parametrize("kinds", [["email", "names"], ["Email"], "cards"])
def test_unknown_kind_is_refused_naming_the_allowed_kinds(kinds):
    with pytest.raises(ValueError, match="allowed: email, phone, card, ssn, account"):
        Redactor(kinds=kinds)


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        Redactor(region="XX")


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("US", "call 020 7946 0958 today"),
        ("GB", "call [PHONE] today"),
        ("gb", "call [PHONE] today"),
    ],
)
def test_region_decides_numbers_without_a_country_code(region, expected):
    assert Redactor(region=region).redact("call 020 7946 0958 today").text == expected


@pytest.mark.parametrize(
    ("text", "alone", "together"),
    [
        # The phone matcher alone sees a phone number at the start of this card number.
        (
            "Card 2125550143 123453 was charged.",
            {"phone": "Card [PHONE] 123453 was charged."},
            "Card [CARD] was charged.",
        ),
        # ... and one inside this e-mail address.
        (
            "Write to jane.2125550143@example.com now.",
            {"phone": "Write to jane.[PHONE]@example.com now."},
            "Write to [EMAIL] now.",
        ),
        # Same span: the more specific kind wins.
        (
            "account number 4111 1111 1111 1111 was closed",
            {"account": "account number [ACCOUNT] was closed"},
            "account number [CARD] was closed",
        ),
        (
            "acct 123-45-6789 is my SSN",
            {"account": "acct [ACCOUNT] is my SSN"},
            "acct [SSN] is my SSN",
        ),
        (
            "acct 2125550143 is wrong",
            {"phone": "acct [PHONE] is wrong"},
            "acct [ACCOUNT] is wrong",
        ),
    ],
)
def test_overlapping_matches_go_to_the_longest_most_specific_kind(
    text, alone, together
):
    for kind, expected in alone.items():
        assert Redactor(kinds=[kind]).redact(text).text == expected
    assert REDACTOR.redact(text).text == together
    assert REDACTOR.redact(text) == REDACTOR.redact(text)


def test_two_cards_run_together_are_both_found():
    result = REDACTOR.redact("cards 4111 1111 1111 1111 5500 0000 0000 0004 both")
    assert result.text == "cards [CARD] [CARD] both"
    assert result.counts == {"card": 2}


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("5500000000000004", True),
        ("378282246310005", True),
        ("6011111111111117", True),
        ("79927398713", True),
        ("4111111111111112", False),
        ("1234567890123456", False),
        ("79927398710", False),
        ("0", False),
        ("", False),
        ("4111 1111 1111 1111", False),
        ("4111-1111-1111-1111", False),
    ],
)
def test_luhn_valid(digits, valid):
    assert luhn_valid(digits) is valid


def test_long_text_completes():
    # Not a timing assertion: only that a 50,000-character complaint full of numbers
    # is redacted completely.
    paragraph = (
        "On XX/XX/2023 I paid $1,250.00 but XXXX says I owe {$31000.00}. "
        + SENTENCE
        + " Call +44 20 7946 0958. "
    )
    repeats = 50_000 // len(paragraph)
    text = paragraph * repeats
    assert 45_000 < len(text) <= 50_000
    result = REDACTOR.redact(text)
    assert result.counts == {
        "email": repeats,
        "phone": 2 * repeats,
        "card": repeats,
        "ssn": repeats,
        "account": repeats,
    }
    assert "4111" not in result.text and "@example.com" not in result.text
    assert result.text.count("XX/XX/2023 I paid $1,250.00") == repeats
