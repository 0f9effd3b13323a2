"""Checks over the pipeline's datasets: integrity, leakage (more families land here)."""

from . import fingerprint, leakage  # noqa: F401
