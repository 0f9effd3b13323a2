"""Small helpers shared by check families."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and the datasets load inside the helpers: `mlwarden scan` needs only Family
    import numpy as np

    from ..sources.datasets import Batch

SAMPLE_IDS = 20


def row_ids(batch: Batch, id_column: str | None) -> np.ndarray:
    """Row ids of a batch: the spec's id column when the batch has it, else row ordinals."""
    import numpy as np

    rb = batch.data
    if id_column and id_column in rb.schema.names:
        return rb.column(id_column).to_numpy(zero_copy_only=False)
    return np.arange(batch.offset, batch.offset + rb.num_rows, dtype=np.int64)


def shared_columns(sources: Any, splits: Iterable[str] | None = None, exclude: Iterable[str | None] = ()) -> list[str]:
    """Columns that every one of ``splits`` (default: all) holds, minus ``exclude``, sorted."""
    names = [s for s in (splits if splits is not None else sources.datasets) if s in sources.datasets]
    present = [set(sources.columns(s)) for s in names]
    if not present:
        return []
    return sorted(set.intersection(*present) - {e for e in exclude if e})


def py(v: Any) -> Any:
    """A JSON-friendly Python value from a numpy scalar."""
    import numpy as np

    return v.item() if isinstance(v, np.generic) else v


def first_ids(chunks: list[np.ndarray], limit: int = SAMPLE_IDS) -> list[Any]:
    out: list[Any] = []
    for c in chunks:
        out.extend(py(v) for v in c[: limit - len(out)])
        if len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class Family:
    """A family of findings that one check reports (code rules, artifact issue kinds…)."""

    id: str
    title: str
    what: str
    why: str
    fix: str
    references: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    """Issue kinds that belong to the family (by prefix), where the family maps kinds."""


def family_check(base: type, family: Family, module: str) -> type:
    """A registered check class for ``family``: checks of a table differ only in their data."""
    from ..registry import register

    doc = (f"{family.title}.\n\n**What it finds.** {family.what}\n\n**Why it matters.** {family.why}\n\n"
           f"**How to fix.** {family.fix}\n")
    name = "".join(p.title() for p in family.id.split(".")[1].split("_"))
    return register(type(name, (base,), {"id": family.id, "title": family.title, "references": family.references,
                                         "family": family, "__doc__": doc, "__module__": module}))
