"""The PII detectors: what they find, what they must not, and redaction (data.privacy.pii)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlwarden.checks.privacy import detectors
from mlwarden.checks.privacy.detectors import is_name_column, is_ssn_column, scan_integers, scan_strings
from mlwarden.checks.privacy.validators import card_brand, iban_mod97, luhn, valid_ssn

POSITIVE = [
    ("user0@example.com", "email"),
    ("Contact: jane.doe+ml@mail.example.co.uk, thanks", "email"),
    ("+1 415-555-0100", "phone"),
    ("+14155550100", "phone"),
    ("(415) 555-0100", "phone"),
    ("415.555.0100", "phone"),
    ("+44 20 7946 0958", "phone"),
    ("020 7946 0958", "phone"),
    ("call me on 07700 900123 tomorrow", "phone"),
    ("123-45-6789", "us_ssn"),
    ("ssn 078-05-1120 on file", "us_ssn"),
    ("4111 1111 1111 1111", "credit_card"),
    ("4111-1111-1111-1111", "credit_card"),
    ("5500000000000004", "credit_card"),
    ("paid with 378282246310005 yesterday", "credit_card"),
    ("DE89 3704 0044 0532 0130 00", "iban"),
    ("GB82WEST12345698765432", "iban"),
    ("login from 192.168.1.20", "ip_address"),
    ("2001:db8:85a3::8a2e:370:7334", "ip_address"),
]

NEGATIVE = [
    "4111 1111 1111 1112",  # fails Luhn
    "000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000",  # never-issued SSNs
    "1.2.3", "v1.2.3.4.5", "256.1.1.1",  # versions, bad octets
    "2024-01-15", "15-01-2024", "2024-01-15T10:30:00", "12:30:45",  # dates, times
    "978-3-16-148410-0", "0-306-40615-2", "9780306406157",  # ISBNs
    "4155550100", "123-456-7890", "1234567890123",  # bare digits, invalid NANP, no brand
    "1234.56", "1,234,567.89", "C000123456", "42", "",  # amounts and ids
    "std::vector", "user@localhost", "a..b@example.com", "01.01.2024 12.00",
]


@pytest.mark.parametrize(("text", "kind"), POSITIVE)
def test_finds(text: str, kind: str) -> None:
    found = scan_strings(pa.array([text]))
    assert kind in found, found
    assert found[kind].rows.tolist() == [0]
    example = found[kind].examples[0]
    assert text not in example and example != text


@pytest.mark.parametrize("text", NEGATIVE)
def test_does_not_find(text: str) -> None:
    found = scan_strings(pa.array([text]))
    assert found == {}, {k: h.examples for k, h in found.items()}


def test_iban_failing_mod97_is_no_iban() -> None:
    assert "iban" not in scan_strings(pa.array(["DE89 3704 0044 0532 0130 01"]))


def test_validators() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert card_brand("4111111111111111") == "visa" and card_brand("378282246310005") == "amex"
    assert card_brand("2221000000000009") == "mastercard" and card_brand("9111111111111111") is None
    assert iban_mod97("DE89370400440532013000") and not iban_mod97("DE89370400440532013001")
    assert valid_ssn(123, 45, 6789)
    assert not any(valid_ssn(*x) for x in [(0, 12, 3456), (666, 1, 1), (900, 1, 1), (999, 1, 1), (1, 0, 1), (1, 1, 0)])


def test_redaction_keeps_at_most_last_four_digits() -> None:
    found = scan_strings(pa.array(["4111 1111 1111 1111", "123-45-6789", "+1 415-555-0100", "user0@example.com",
                                   "DE89 3704 0044 0532 0130 00"]))
    assert found["credit_card"].examples == ["**** **** **** 1111"]
    assert found["us_ssn"].examples == ["***-**-6789"]
    assert found["phone"].examples == ["+* ***-***-0100"]
    assert found["email"].examples == ["u***@e******.com"]
    assert found["iban"].examples == ["DE****************3000"]


def test_free_text_counts_every_match_once() -> None:
    text = "mail a@example.com or b@example.org, card 4111 1111 1111 1111, iban DE89 3704 0044 0532 0130 00"
    found = scan_strings(pa.array([text, None, "nothing here"]))
    assert found["email"].counts.tolist() == [2]
    assert found["credit_card"].counts.tolist() == [1]
    assert found["iban"].counts.tolist() == [1]
    assert "phone" not in found  # the IBAN's digits are not also a phone number


def test_vectorized_path_equals_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [t for t, _ in POSITIVE] + NEGATIVE + [None, " 123-45-6789 ", "5500-0000-0000-0004"] * 3
    arr = pa.array(values)

    def flat(found: dict) -> dict:
        return {k: (h.rows.tolist(), h.counts.tolist(), h.examples) for k, h in found.items()}

    fast = flat(scan_strings(arr, ssn_column=True))
    monkeypatch.setattr(detectors, "FAST", False)
    assert flat(scan_strings(arr, ssn_column=True)) == fast


def test_dictionary_arrays_match_plain_ones() -> None:
    values = ["user0@example.com", "x", None, "123-45-6789", "user0@example.com", "x"] * 50
    plain = scan_strings(pa.array(values))
    encoded = scan_strings(pa.array(values).dictionary_encode())
    assert plain.keys() == encoded.keys()
    for k in plain:
        assert plain[k].rows.tolist() == encoded[k].rows.tolist()
        assert plain[k].counts.tolist() == encoded[k].counts.tolist()
        assert plain[k].examples == encoded[k].examples


def test_integer_columns() -> None:
    arr = pa.array([4111111111111111, 4111111111111112, 123, 123456789, 666123456, None], pa.int64())
    found = scan_integers(arr)
    assert list(found) == ["credit_card"] and found["credit_card"].rows.tolist() == [0]
    assert found["credit_card"].examples == ["************1111"]
    ssn = scan_integers(arr, ssn_column=True)["us_ssn"]
    assert ssn.rows.tolist() == [3] and ssn.examples == ["***-**-6789"]


def test_bare_ssns_only_in_ssn_columns() -> None:
    arr = pa.array(["123456789", "000456789"])
    assert scan_strings(arr) == {}
    assert scan_strings(arr, ssn_column=True)["us_ssn"].rows.tolist() == [0]


def test_names_only_look_like_names() -> None:
    arr = pa.array(["John Smith", "mary", "O'Brien", "José Müller-Lüdenscheidt", "A", "ACME", "John F. Kennedy", None])
    found = scan_strings(arr, name_column=True)
    assert found["names"].rows.tolist() == [0, 2, 3, 6]
    assert found["names"].examples[0] == "J*** S***"
    assert "names" not in scan_strings(arr)


@pytest.mark.parametrize(("name", "expected"), [("name", True), ("first_name", True), ("CustomerName", True),
                                                ("surname", True), ("product_name", False), ("filename", False)])
def test_name_columns(name: str, expected: bool) -> None:
    assert is_name_column(name) is expected


@pytest.mark.parametrize(("name", "expected"), [("ssn", True), ("tax_id", True), ("customer_ssn", True),
                                                ("TaxId", True), ("lesson", False), ("tint", False)])
def test_ssn_columns(name: str, expected: bool) -> None:
    assert is_ssn_column(name) is expected
