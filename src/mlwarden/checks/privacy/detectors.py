"""PII detectors: find candidates over whole Arrow arrays, validate only the candidates.

Each detector is a permissive RE2 pattern that ``pyarrow.compute`` runs over a whole
column (vectorized, no Python per row), a strict Python pattern that runs only on the
candidate rows, and a validator with the rules a regular expression can't express: the
Luhn checksum and issuer prefixes of card numbers, the mod-97 check of IBANs, the
unassigned SSN ranges, the digit count of phone numbers, octet ranges of IPv4 (the
validators and redactors live in :mod:`.validators`).

Nothing here keeps a raw value: the scanners return counts, row positions and *redacted*
examples (at most the last 4 digits of a number; an email keeps its first letters and its
top-level domain), so nothing downstream can leak what was found.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .validators import (IIN, card_brand, leading_iban, mask_digits, redact_email, redact_iban, redact_ip,
                         redact_name, valid_card, valid_ssn)

KINDS = ("email", "phone", "us_ssn", "credit_card", "iban", "ip_address", "names")
HIGH_RISK = frozenset({"us_ssn", "credit_card", "iban"})
LABELS = {"email": "email addresses", "phone": "phone numbers", "us_ssn": "US social security numbers",
          "credit_card": "payment card numbers", "iban": "IBANs", "ip_address": "IP addresses",
          "names": "person names"}

_SSN_COLUMN = re.compile(r"(?:^|_)(?:ssn|social_?security(?:_?(?:no|num|number))?|tax_?id|tin|itin)(?:$|_)")
_NAME_COLUMN = re.compile(
    r"^(?:(?:first|last|middle|given|family|full|customer|client|patient|person|employee|applicant|"
    r"account_?holder|holder|card_?holder|contact|maiden|member|student|user)_?)?"
    r"(?:name|names|surname|forename|firstname|lastname)$")


def snake(name: str) -> str:
    """``CustomerName`` / ``customer-name`` → ``customer_name``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def is_ssn_column(name: str) -> bool:
    return bool(_SSN_COLUMN.search(snake(name)))


def is_name_column(name: str) -> bool:
    return bool(_NAME_COLUMN.match(snake(name)))


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PHONE = re.compile(r"""
    (?<![\w.+\-/:])
    (?:
      (?P<intl>\+[1-9]\d{0,2}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{1,5}){1,5})
    | (?P<nanp>(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[.\- ])[2-9]\d{2}[.\- ]\d{4})
    | (?P<trunk>\(?0\d{1,4}\)?[ .\-]\d{2,8}(?:[ .\-]\d{2,4}){0,3})
    )
    (?![\w]|[.\-/:]\d)
""", re.X)


def _phones(text: str) -> Iterator[re.Match[str]]:
    for m in _PHONE.finditer(text):
        s = m.group(0)
        if not 10 <= sum(c.isdigit() for c in s) <= 15:
            continue
        if m.group("nanp") and not s.startswith("(") and s[3] != s[7]:
            continue  # 415-555.0100: mixed separators are not a written phone number
        if m.group("trunk") and len(set(re.findall(r"[ .\-]", s.replace(") ", ")")))) > 1:
            continue
        yield m


def _emails(text: str) -> Iterator[re.Match[str]]:
    for m in _EMAIL.finditer(text):
        local = m.group(0).partition("@")[0]
        if ".." not in local and not local.endswith("."):
            yield m


_EMAIL = re.compile(r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@"
                    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])")
_SSN = re.compile(r"(?<![\w\-])(\d{3})([\- ])(\d{2})\2(\d{4})(?![\w]|-\d)")
_SSN_BARE = re.compile(r"(?<![\w\-])(\d{3})()(\d{2})(\d{4})(?![\w]|-\d)")
_CARD = re.compile(r"(?<![\w.\-])\d(?:[ \-]?\d){12,18}(?![\w]|[.\-]\d)")
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,34}")
_IPV4 = re.compile(rf"(?<![\w.:]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:|\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])")


Span = tuple[int, int, str]
"""Where a validated match starts and ends in its string, and the match itself."""


def _spans(matches: Iterator[re.Match[str]]) -> Iterator[Span]:
    return ((m.start(), m.end(), m.group(0)) for m in matches)


def _emails_spans(text: str) -> Iterator[Span]:
    return _spans(_emails(text))


def _phones_spans(text: str) -> Iterator[Span]:
    return _spans(_phones(text))


def _ssns(pattern: re.Pattern[str]) -> Callable[[str], Iterator[Span]]:
    def find(text: str) -> Iterator[Span]:
        return _spans(m for m in pattern.finditer(text)
                      if valid_ssn(int(m.group(1)), int(m.group(3)), int(m.group(4))))
    return find


def _cards(text: str) -> Iterator[Span]:
    return _spans(m for m in _CARD.finditer(text) if valid_card(m.group(0)))


def _ibans(text: str) -> Iterator[Span]:
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        found = leading_iban(text[m.start():])
        if found:
            end = m.start() + _raw_length(text[m.start():], len(found))
            yield m.start(), end, found
            pos = end
        else:
            pos = m.start() + 1


def _raw_length(text: str, compact: int) -> int:
    """How many characters of ``text`` hold its first ``compact`` non-space characters."""
    seen = 0
    for i, c in enumerate(text):
        seen += c != " "
        if seen == compact:
            return i + 1
    return len(text)


def _ips(text: str) -> Iterator[Span]:
    yield from _spans(_IPV4.finditer(text))
    for m in _IPV6.finditer(text):
        try:
            addr = ipaddress.IPv6Address(m.group(0))
        except ValueError:
            continue
        if not (addr.is_unspecified or addr.is_loopback):
            yield m.start(), m.end(), m.group(0)


@dataclass(frozen=True)
class Detector:
    kind: str
    candidate: str
    """RE2 pattern (pyarrow.compute) matching every string that may hold this kind."""
    find: Callable[[str], Iterator[Span]]
    """Validated matches in one string (raw; redact before keeping anything)."""
    redact: Callable[[str], str]
    whole: str | None = None
    """RE2 pattern of a value that *is* one valid match (validation included), or None."""
    check: Callable[[pa.Array], np.ndarray] | None = None
    """Vectorized validation of values matching ``whole`` (what RE2 can't express)."""


def _digits(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(values, r"\D", "")


def _cards_vec(values: pa.Array) -> np.ndarray:
    """Luhn and issuer prefix over whole arrays of card-shaped values."""
    digits = _digits(values)
    n = np.asarray(pc.utf8_length(digits).to_numpy(zero_copy_only=False), dtype=np.int64)
    num = np.asarray(pc.cast(digits, pa.uint64()).to_numpy(zero_copy_only=False), dtype=np.uint64)
    lead4 = np.asarray(pc.cast(pc.utf8_slice_codeunits(digits, 0, 4), pa.int64()).to_numpy(zero_copy_only=False))
    brand = np.zeros(len(values), dtype=bool)
    for lo, hi, k, lengths, _ in IIN:
        lead = lead4 // 10 ** (4 - k)
        brand |= np.isin(n, lengths) & (lead >= lo) & (lead <= hi)
    return brand & _luhn_vec(num)


def _phone_digits_vec(values: pa.Array) -> np.ndarray:
    n = np.asarray(pc.count_substring_regex(values, r"\d").to_numpy(zero_copy_only=False), dtype=np.int64)
    return (n >= 10) & (n <= 15)


_AREA = r"(?:00[1-9]|0[1-9]\d|[1-578]\d\d|6[0-57-9]\d|66[0-57-9])"
_GROUP = r"(?:0[1-9]|[1-9]\d)"
_SERIAL = r"(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})"
_RE2_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


def _anchored(*alternatives: str) -> str:
    return "|".join(rf"^\s*{a}\s*$" for a in alternatives)


# In priority order: a match overlapping one found by an earlier detector is not counted
# again (the digits of an IBAN are not also a phone number).
DETECTORS: tuple[Detector, ...] = (
    Detector("email", r"[A-Za-z0-9._%+\-]@[A-Za-z0-9\-]+\.[A-Za-z]{2}", _emails_spans, redact_email,
             _anchored(r"[A-Za-z0-9][A-Za-z0-9_%+\-]*(?:\.[A-Za-z0-9_%+\-]+)*@"
                       r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}")),
    Detector("iban", r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}", _ibans, redact_iban),
    Detector("credit_card", r"\d(?:[ \-]?\d){12}", _cards, mask_digits,
             _anchored(r"\d(?: ?\d){12,18}", r"\d(?:-?\d){12,18}"), _cards_vec),
    Detector("us_ssn", r"\d{3}[\- ]\d{2}[\- ]\d{4}", _ssns(_SSN), lambda s: "***-**-" + s[-4:],
             _anchored(f"{_AREA}-{_GROUP}-{_SERIAL}", f"{_AREA} {_GROUP} {_SERIAL}")),
    Detector("ip_address", r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|::|(?:[0-9A-Fa-f]{1,4}:){6}", _ips, redact_ip,
             _anchored(rf"{_RE2_OCTET}(?:\.{_RE2_OCTET}){{3}}")),
    Detector("phone", r"\+[1-9]|(?:\(\d{3}\) ?|\d{3}[.\- ])\d{3}[.\- ]\d{4}|(?:^|[^\w.+\-/:])\(?0\d{1,4}\)?[ .\-]\d{2}",
             _phones_spans, mask_digits,
             _anchored(r"\+[1-9]\d{0,2}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{1,5}){1,5}",
                       r"\([2-9]\d{2}\) ?[2-9]\d{2}[.\- ]\d{4}",
                       *(rf"[2-9]\d{{2}}{sep}[2-9]\d{{2}}{sep}\d{{4}}" for sep in (r"\-", r"\.", " "))),
             _phone_digits_vec),
)
_SSN_BARE_DETECTOR = Detector("us_ssn", r"\d{9}", _ssns(_SSN_BARE), lambda s: "***-**-" + s[-4:],
                              _anchored(f"{_AREA}{_GROUP}{_SERIAL}"))
_ANY = "|".join(f"(?:{d.candidate})" for d in DETECTORS)
FAST = True
"""Take the vectorized path for values that are one whole match (tests compare both paths)."""
_NAME_VALUE = (r"^\s*\p{Lu}(?:\p{Ll}+|['’]\p{Lu}\p{Ll}+)(?:\p{Lu}\p{Ll}+)?(?:['’\-]\p{Lu}?\p{Ll}+)*"
               r"(?:\s+(?:\p{Lu}\.|\p{Lu}\p{Ll}*(?:\p{Lu}\p{Ll}+)?(?:['’\-]\p{Lu}?\p{Ll}+)*\.?)){0,3}\s*$")


@dataclass
class Hits:
    """One kind's matches in one array, by row (positions in the array, ascending)."""

    rows: np.ndarray
    counts: np.ndarray
    """Validated matches in each row."""
    examples: list[str]
    """A redacted example for each of the first ``EXAMPLES`` rows (at least)."""


EXAMPLES = 32


def scan_strings(arr: pa.Array, *, ssn_column: bool = False, name_column: bool = False) -> dict[str, Hits]:
    """PII in a string array: kind → hits.

    Candidates come from one RE2 pass over the whole array. Candidates that are one whole
    valid match (an email column, a phone column) are validated vectorized; only the rest
    (free text, values that need a checksum RE2 can't do) reach Python, row by row.
    """
    if pa.types.is_dictionary(arr.type):
        return _scan_dictionary(arr, ssn_column=ssn_column, name_column=name_column)
    out: dict[str, Hits] = {}
    if name_column:
        rows = _true(pc.match_substring_regex(arr, _NAME_VALUE))
        if rows.size:
            out["names"] = Hits(rows, np.ones(rows.size, np.int64),
                                [redact_name(v) for v in arr.take(rows[:EXAMPLES]).to_pylist()])
    detectors = DETECTORS + ((_SSN_BARE_DETECTOR,) if ssn_column else ())
    pattern = _ANY + (f"|(?:{_SSN_BARE_DETECTOR.candidate})" if ssn_column else "")
    cand = _true(pc.match_substring_regex(arr, pattern))
    if not cand.size:
        return out
    sub = arr.take(cand)
    masks = [_mask(pc.match_substring_regex(sub, d.candidate)) for d in detectors]
    pending = np.logical_or.reduce(masks)
    found: dict[str, list[tuple[np.ndarray, np.ndarray, Detector]]] = {}
    examples: dict[str, dict[int, str]] = {}
    earlier = np.zeros(len(sub), dtype=bool)
    for det, mask in zip(detectors, masks):
        if FAST and det.whole is not None:
            idx = np.flatnonzero(mask & pending & ~earlier)
            values = sub.take(idx)
            ok = _mask(pc.match_substring_regex(values, det.whole))
            if det.check is not None and ok.any():
                ok[ok] = det.check(values.filter(ok))
            idx = idx[ok]
            pending[idx] = False
            if idx.size:
                found.setdefault(det.kind, []).append((cand[idx], np.ones(idx.size, np.int64), det))
        earlier |= mask
    idx = np.flatnonzero(pending)
    for i, text in zip(idx.tolist(), sub.take(idx).to_pylist()):
        taken: list[tuple[int, int]] = []
        for det, mask in zip(detectors, masks):
            if not mask[i]:
                continue
            matches = [(a, b, raw) for a, b, raw in det.find(text) if not any(a < y and x < b for x, y in taken)]
            if matches:
                taken += [(a, b) for a, b, _ in matches]
                row = int(cand[i])
                found.setdefault(det.kind, []).append((np.array([row]), np.array([len(matches)]), det))
                examples.setdefault(det.kind, {}).setdefault(row, det.redact(matches[0][2]))
    for kind, parts in found.items():
        rows = np.concatenate([p[0] for p in parts])
        counts = np.concatenate([p[1] for p in parts])
        order = np.argsort(rows, kind="stable")
        rows, counts = rows[order], counts[order]
        rows, first = np.unique(rows, return_index=True)  # a row found by both SSN patterns counts once
        counts = np.add.reduceat(counts, first) if rows.size else counts
        known = examples.get(kind, {})
        head = rows[:EXAMPLES]
        fresh = [r for r in head.tolist() if r not in known]
        if fresh:
            redact = parts[0][2].redact
            known = known | {r: redact(v.strip()) for r, v in zip(fresh, arr.take(np.array(fresh)).to_pylist())}
        out[kind] = Hits(rows, counts, [known[r] for r in head.tolist()])
    return out


def _scan_dictionary(arr: pa.DictionaryArray, *, ssn_column: bool, name_column: bool) -> dict[str, Hits]:
    """Scan each distinct value once, then map hits back to rows through the indices."""
    found = scan_strings(arr.dictionary, ssn_column=ssn_column, name_column=name_column)
    indices = np.asarray(arr.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    safe = np.maximum(indices, 0)
    out = {}
    for kind, hits in found.items():
        counts = np.zeros(len(arr.dictionary), dtype=np.int64)
        counts[hits.rows] = hits.counts
        position = np.full(len(arr.dictionary), -1, dtype=np.int64)
        position[hits.rows[: len(hits.examples)]] = np.arange(min(len(hits.examples), hits.rows.size))
        rows = np.flatnonzero((indices >= 0) & (counts[safe] > 0))
        first = rows[:EXAMPLES]
        examples = [hits.examples[p] if p >= 0 else "(redacted)" for p in position[indices[first]].tolist()]
        out[kind] = Hits(rows, counts[indices[rows]], examples)
    return out


def scan_integers(arr: pa.Array, *, ssn_column: bool = False) -> dict[str, Hits]:
    """Card numbers (and, in SSN-named columns, 9-digit SSNs) stored as integers."""
    v = np.asarray(pc.cast(arr, pa.int64(), safe=False).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    out: dict[str, Hits] = {}
    cand = np.flatnonzero(v >= 10**12)
    if cand.size:
        ok = cand[_luhn_vec(v[cand])]
        rows = [int(i) for i in ok if card_brand(str(v[i]))]
        if rows:
            out["credit_card"] = Hits(np.array(rows, np.int64), np.ones(len(rows), np.int64),
                                      [mask_digits(str(v[i])) for i in rows[:EXAMPLES]])
    if ssn_column:
        area, group, serial = v // 10**6, (v // 10**4) % 100, v % 10**4
        good = (v > 0) & (v < 10**9) & (area != 0) & (area != 666) & (area < 900) & (group != 0) & (serial != 0)
        rows_a = np.flatnonzero(good)
        if rows_a.size:
            out["us_ssn"] = Hits(rows_a, np.ones(rows_a.size, np.int64),
                                 [f"***-**-{int(v[i]) % 10**4:04d}" for i in rows_a[:EXAMPLES]])
    return out


def _luhn_vec(x: np.ndarray) -> np.ndarray:
    """Luhn checksum of non-negative integers (up to 19 digits), vectorized."""
    x = np.asarray(x).astype(np.uint64)
    ten = np.uint64(10)
    total = np.zeros(x.shape, dtype=np.uint64)
    for i in range(20):
        d = x % ten
        if i % 2:
            d = np.where(d > 4, d * np.uint64(2) - np.uint64(9), d * np.uint64(2))
        total += d
        x = x // ten
    return total % ten == 0


def _mask(mask: pa.Array) -> np.ndarray:
    return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _true(mask: pa.Array) -> np.ndarray:
    return np.flatnonzero(_mask(mask))
