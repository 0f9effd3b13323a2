"""Validators and redactors behind the PII detectors: the rules a regular expression can't express.

The Luhn checksum and issuer prefixes of card numbers, the mod-97 check of IBANs, the
unassigned SSN ranges — and the redaction of what was found, so that examples in a
report keep at most the last 4 digits of a number (an email its first letters and its
top-level domain). Kept apart from :mod:`.detectors`, which finds candidates over whole
Arrow arrays, because these run per candidate in plain Python and are tested alone.
"""

from __future__ import annotations

import re

def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# (first digits low, high, how many leading digits, valid lengths, brand)
IIN: tuple[tuple[int, int, int, tuple[int, ...], str], ...] = (
    (4, 4, 1, (13, 16, 19), "visa"),
    (51, 55, 2, (16,), "mastercard"),
    (2221, 2720, 4, (16,), "mastercard"),
    (34, 34, 2, (15,), "amex"),
    (37, 37, 2, (15,), "amex"),
    (6011, 6011, 4, (16, 17, 18, 19), "discover"),
    (644, 649, 3, (16, 17, 18, 19), "discover"),
    (65, 65, 2, (16, 17, 18, 19), "discover"),
    (300, 305, 3, (14, 15, 16, 17, 18, 19), "diners"),
    (36, 36, 2, (14, 15, 16, 17, 18, 19), "diners"),
    (38, 39, 2, (16, 17, 18, 19), "diners"),
    (3528, 3589, 4, (16, 17, 18, 19), "jcb"),
    (62, 62, 2, (16, 17, 18, 19), "unionpay"),
    (2200, 2204, 4, (16, 17, 18, 19), "mir"),
    (5018, 5018, 4, (13, 14, 15, 16, 17, 18, 19), "maestro"),
    (5020, 5020, 4, (13, 14, 15, 16, 17, 18, 19), "maestro"),
    (5038, 5038, 4, (13, 14, 15, 16, 17, 18, 19), "maestro"),
    (5893, 5893, 4, (13, 14, 15, 16, 17, 18, 19), "maestro"),
    (6304, 6304, 4, (13, 14, 15, 16, 17, 18, 19), "maestro"),
    (6759, 6759, 4, (13, 14, 15, 16, 17, 18, 19), "maestro"),
    (6761, 6763, 4, (13, 14, 15, 16, 17, 18, 19), "maestro"),
)


def card_brand(digits: str) -> str | None:
    """The card network whose issuer prefix and length ``digits`` fit, else None."""
    for lo, hi, n, lengths, brand in IIN:
        if len(digits) in lengths and lo <= int(digits[:n]) <= hi:
            return brand
    return None


def valid_card(text: str) -> bool:
    seps = {c for c in text if not c.isdigit()}
    digits = re.sub(r"\D", "", text)
    return len(seps) <= 1 and 13 <= len(digits) <= 19 and card_brand(digits) is not None and luhn(digits)


def valid_ssn(area: int, group: int, serial: int) -> bool:
    return area != 0 and area != 666 and area < 900 and group != 0 and serial != 0


_IBAN_LENGTH = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban_mod97(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def leading_iban(text: str) -> str | None:
    """The IBAN at the start of ``text`` (its country's length, cut at a group edge), if valid."""
    need = _IBAN_LENGTH.get(text[:2])
    if need is None:
        return None
    compact: list[str] = []
    i = 0
    while i < len(text) and len(compact) < need:
        if text[i] != " ":
            compact.append(text[i])
        i += 1
    if len(compact) < need or (i < len(text) and text[i] != " "):
        return None
    iban = "".join(compact)
    return iban if iban_mod97(iban) else None


def mask_digits(text: str, keep: int = 4) -> str:
    """Every digit but the last ``keep`` becomes ``*``; separators stay."""
    total = sum(c.isdigit() for c in text)
    out, seen = [], 0
    for c in text:
        if c.isdigit():
            seen += 1
            out.append(c if seen > total - keep else "*")
        else:
            out.append(c if c in " -.()+" else "*")
    return "".join(out)


def redact_email(text: str) -> str:
    local, _, domain = text.partition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{host[:1]}{'*' * max(len(host) - 1, 1)}.{tld.lower()}"


def redact_ip(text: str) -> str:
    if ":" in text:
        return text.split(":", 1)[0] + ":****:…"
    return text.split(".", 1)[0] + ".*.*.*"


def redact_iban(text: str) -> str:
    return f"{text[:2]}{'*' * (len(text) - 6)}{text[-4:]}"


def redact_name(text: str) -> str:
    return " ".join(w[:1] + "***" for w in text.split())
