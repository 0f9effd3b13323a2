"""artifact.* — model files scanned without loading them (allowlist-first for pickles)."""

from . import scanning  # noqa: F401
