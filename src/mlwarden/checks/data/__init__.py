"""Checks over the pipeline's datasets: integrity, leakage (more families land here)."""

from . import entity_temporal, fingerprint, leakage, mismatch, near_duplicates, target_leakage  # noqa: F401
