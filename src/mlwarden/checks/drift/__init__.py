"""Distribution drift between train and the other splits (test, production, feedback)."""

from . import columns  # noqa: F401
