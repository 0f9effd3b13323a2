"""artifact.* — model files scanned without loading them (allowlist-first for pickles).

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
