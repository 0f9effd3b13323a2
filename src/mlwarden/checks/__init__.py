"""Check families. Importing this package registers every check with the registry."""

from . import artifact, code, data, storage  # noqa: F401
