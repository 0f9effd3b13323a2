"""data.privacy.* — personal data in the datasets: PII values and re-identification risk.

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
