"""Checks over where the data and the model are stored: local permissions, S3 buckets.

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
