"""Attacks on the model under audit: pure algorithms over the Model facade (no spec or registry knowledge)."""
