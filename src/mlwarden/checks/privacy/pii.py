"""data.privacy.pii — personal data (emails, phones, SSNs, cards, IBANs, IPs, names) in the datasets.

Every string column of every split is scanned in full, free text included, with the
vectorized detectors of :mod:`.detectors`; integer columns are checked for card numbers
(and, when the column is named like one, SSNs) stored as numbers. The state per split,
column and kind is two counts and the first 20 hits (row ordinal, row id, *redacted*
example): a raw value never leaves the worker that found it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ...findings import Location, Severity
from ...registry import AuditContext, Chart, FoldCheck, Outcome, register
from ...sources.datasets import Batch
from ..data.rowhash import dictionary
from .detectors import HIGH_RISK, KINDS, LABELS, is_name_column, is_ssn_column, scan_integers, scan_strings

SAMPLE_IDS = 20
SHOWN_EXAMPLES = 3
CRITICAL_SHARE = 0.01
"""SSNs, cards or IBANs in more than this share of a split's rows: critical."""

_WHY = ("Models memorize rare strings in their training data, and membership-inference and "
        "extraction attacks (OWASP ML03, ML04) get them back out; the data set itself is also "
        "personal data under GDPR, CCPA, HIPAA or PCI DSS, with their rules on purpose, retention "
        "and breach notification.")
_FIX = ("Drop the column if the model doesn't need it. If it does (as a join key or a signal), "
        "replace values with a keyed hash (HMAC with a secret salt kept out of the data), a "
        "token from a vault, or a coarser value (domain of an email, area code of a phone); "
        "scrub free text before it reaches the training set, and re-run the audit.")


def _string_like(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _string_like(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t)


@register
class Pii(FoldCheck):
    """Finds personal data in the datasets: emails, phone numbers, US SSNs, payment cards, IBANs, IP addresses and names.

    **What it finds.** Per split, column and kind: how many rows hold at least one value,
    their share of the split, the number of matches, up to 3 *redacted* examples
    (``u***@e******.com``, ``***-**-6789``, ``**** **** **** 1111``) and the first 20
    row ids. Every string column is scanned in full, free text included. Candidates are
    validated, not just pattern-matched: cards by issuer prefix and Luhn checksum, IBANs
    by country length and mod-97, SSNs outside the never-issued ranges (area 000, 666,
    900–999, group 00, serial 0000), IPv4 by octet range with all four octets, phone
    numbers with 10–15 digits written with a ``+``, parentheses or separators (a bare run
    of digits is not a phone number). Integer columns are checked for card numbers, and
    for 9-digit SSNs when named like ``ssn`` or ``tax_id``. Person names are reported only
    in columns named like ``name``, ``first_name``, ``surname`` or ``customer_name`` whose
    values look like capitalized words. The report never holds a raw value.

    **Severity.** SSNs, cards and IBANs: high, critical in more than 1 % of a split's
    rows. Emails, phone numbers, IP addresses and names: medium.

    **Why it matters.** Models memorize rare strings such as identifiers and contact
    details, and membership-inference and extraction attacks recover them (OWASP ML03,
    ML04). Training data with personal data is also regulated data (GDPR, CCPA, HIPAA,
    PCI DSS): purpose limitation, minimization, retention and breach rules apply to it.

    **How to fix.** Drop the column if the model doesn't need it; otherwise replace it
    with a keyed hash (HMAC with a secret salt stored outside the data), a token from a
    vault, or a coarser value; scrub free text before it enters the training set.
    """

    id = "data.privacy.pii"
    title = "No personal data in the datasets"
    needs = ("data",)
    stage = "data"
    references = ("OWASP-ML03", "OWASP-ML04", "AML.T0024.000", "AML.T0024.001", "AML.M0007", "NIST-MAP")

    def __init__(self, spec: Any, sources: Any) -> None:
        super().__init__(spec, sources)
        self.scan: dict[str, dict[str, str]] = {}  # split → column → "str" | "int"
        for split, ds in sources.datasets.items():
            cols = {}
            for f in ds.schema:
                if _string_like(f.type):
                    cols[f.name] = "str"
                elif pa.types.is_integer(f.type):
                    cols[f.name] = "int"
            self.scan[split] = cols

    def columns(self, split: str) -> list[str]:
        cols = set(self.scan.get(split, {}))
        idcol = self.spec.data.id
        if idcol and idcol in self.sources.columns(split):
            cols.add(idcol)
        return sorted(cols)

    def init(self) -> dict[str, Any]:
        return {"rows": {}, "hits": {}}

    def update(self, state: dict[str, Any], batch: Batch) -> dict[str, Any]:
        rb = batch.data
        split = batch.split
        state["rows"][split] = state["rows"].get(split, 0) + rb.num_rows
        idcol = self.spec.data.id
        ids = rb.column(idcol) if idcol and idcol in rb.schema.names else None
        for col, kind in self.scan.get(split, {}).items():
            arr = rb.column(col)
            if kind == "int":
                found = scan_integers(arr, ssn_column=is_ssn_column(col))
            else:
                if not pa.types.is_dictionary(arr.type) and not pa.types.is_large_string(arr.type) \
                        and not pa.types.is_string(arr.type):
                    arr = arr.cast(pa.large_string())
                if not pa.types.is_dictionary(arr.type):
                    # a column with few distinct values is scanned value by value, not row by row
                    enc = dictionary(arr)
                    if len(enc.dictionary) * 4 <= len(arr):
                        arr = enc
                found = scan_strings(arr, ssn_column=is_ssn_column(col), name_column=is_name_column(col))
            for pii, hits in found.items():
                entry = state["hits"].setdefault((split, col, pii), {"rows": 0, "matches": 0, "samples": []})
                entry["rows"] += int(hits.rows.size)
                entry["matches"] += int(hits.counts.sum())
                head = hits.rows[:SAMPLE_IDS].tolist()
                row_ids = ids.take(np.array(head, dtype=np.int64)).to_pylist() if ids is not None else [None] * len(head)
                entry["samples"] = _first(entry["samples"] + [
                    (batch.offset + r, rid, ex) for r, rid, ex in zip(head, row_ids, hits.examples)])
        return state

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        rows = {k: a["rows"].get(k, 0) + b["rows"].get(k, 0) for k in sorted(a["rows"].keys() | b["rows"].keys())}
        hits = {}
        for key in sorted(a["hits"].keys() | b["hits"].keys()):
            x = a["hits"].get(key, {"rows": 0, "matches": 0, "samples": []})
            y = b["hits"].get(key, {"rows": 0, "matches": 0, "samples": []})
            hits[key] = {"rows": x["rows"] + y["rows"], "matches": x["matches"] + y["matches"],
                         "samples": _first(x["samples"] + y["samples"])}
        return {"rows": rows, "hits": hits}

    def finalize(self, state: dict[str, Any], ctx: AuditContext) -> Outcome:
        idcol = self.spec.data.id
        # an id column that itself holds personal data (emails as user ids) can't name rows
        tainted = {split for split, col, _ in state["hits"] if col == idcol}
        found, findings = [], []
        for (split, col, kind), entry in sorted(state["hits"].items()):
            n = state["rows"].get(split, 0)
            share = entry["rows"] / n if n else 0.0
            found.append({"split": split, "column": col, "kind": kind, "rows": entry["rows"],
                          "share": round(share, 6), "matches": entry["matches"]})
            use_ids = idcol is not None and split not in tainted and idcol in self.sources.columns(split)
            sample = [rid if use_ids else ordinal for ordinal, rid, _ in entry["samples"]]
            examples = list(dict.fromkeys(ex for _, _, ex in entry["samples"]))[:SHOWN_EXAMPLES]
            findings.append(self._finding(split, col, kind, entry, n, share, sample, examples,
                                          idcol if use_ids and idcol is not None else "(row number)"))
        by_kind = {k: sum(f["rows"] for f in found if f["kind"] == k) for k in KINDS}
        metrics = {"rows": dict(sorted(state["rows"].items())),
                   "columns_scanned": {s: len(c) for s, c in sorted(self.scan.items())},
                   "kinds": list(KINDS), "found": found, "rows_by_kind": by_kind}
        chart = Chart(title="Rows holding personal data, by kind", labels=tuple(KINDS),
                      values=tuple(float(by_kind[k]) for k in KINDS), unit="rows")
        return Outcome(findings=findings, metrics=metrics, charts=[chart])

    def _finding(self, split: str, col: str, kind: str, entry: dict[str, Any], n: int, share: float,
                 sample: list[Any], examples: list[str], id_column: str) -> Any:
        if kind in HIGH_RISK:
            severity = Severity.CRITICAL if share > CRITICAL_SHARE else Severity.HIGH
        else:
            severity = Severity.MEDIUM
        what = LABELS[kind]
        where = "looks like person names" if kind == "names" else f"holds {what}"
        return self.finding(
            key=(split, col, kind), severity=severity,
            title=f"data.{split} column {col!r} {where}: {entry['rows']} rows ({share:.2%})",
            description=(f"{entry['rows']} of {n} rows of data.{split} have {what} in column {col!r} "
                         f"({entry['matches']} matches; examples redacted). {_WHY}"),
            remediation=_FIX,
            evidence={"split": split, "column": col, "kind": kind, "rows": entry["rows"], "share": round(share, 6),
                      "matches": entry["matches"], "redacted_examples": examples,
                      "sample_row_ids": sample, "id_column": id_column},
            location=Location(artifact=self.spec.display(self.sources.datasets[split].uri), column=col,
                              rows=tuple(sample)),
        )


def _first(samples: list[tuple[int, Any, str]]) -> list[tuple[int, Any, str]]:
    """The ``SAMPLE_IDS`` hits with the smallest row ordinals: the same whatever the batching."""
    return sorted(samples, key=lambda s: s[0])[:SAMPLE_IDS]
