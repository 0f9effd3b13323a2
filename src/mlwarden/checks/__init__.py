"""Check families. Importing this package registers every check with the registry."""

from . import data  # noqa: F401
