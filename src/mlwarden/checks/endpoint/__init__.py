"""endpoint.* — a bounded pen-test of the spec's live OIP v2 endpoint (``model.endpoint``), by :mod:`mlwarden.probe`.

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
