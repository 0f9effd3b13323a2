"""Distribution drift between train and the other splits (test, production, feedback).

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
