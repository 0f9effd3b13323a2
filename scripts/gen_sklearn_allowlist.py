"""Regenerate src/mlwarden/scan/allowlist_sklearn.txt from the installed scikit-learn.

Run after upgrading scikit-learn: `python scripts/gen_sklearn_allowlist.py`. The list is
static so that scanning never imports every sklearn module (seconds at every start).
"""

import warnings
from pathlib import Path

from sklearn import __version__
from sklearn.utils import all_estimators

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    names = sorted({f"{c.__module__}.{c.__qualname__}" for _, c in all_estimators()})
out = Path(__file__).resolve().parents[1] / "src" / "mlwarden" / "scan" / "allowlist_sklearn.txt"
out.write_text(f"# scikit-learn {__version__} estimators (scripts/gen_sklearn_allowlist.py)\n" + "\n".join(names) + "\n")
print(f"wrote {len(names)} names to {out}")
