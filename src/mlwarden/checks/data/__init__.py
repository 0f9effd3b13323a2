"""Checks over the pipeline's datasets: integrity, leakage (more families land here).

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
