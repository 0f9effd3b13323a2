"""Poisoning suspects and label quality: conflicting labels, label issues, feedback screening."""

from . import conflicts, feedback, label_issues  # noqa: F401
