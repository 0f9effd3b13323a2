"""Poisoning suspects and label quality: conflicting labels, label issues, feedback screening.

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
