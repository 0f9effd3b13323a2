"""Check families. Importing this package registers every check with the registry."""

from . import artifact, code, data, drift, fairness, poisoning, privacy, quality, storage  # noqa: F401
