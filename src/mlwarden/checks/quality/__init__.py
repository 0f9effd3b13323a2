"""data.quality.* — missing values, constant and mixed-type columns, class balance,
duplicate rows within a split, and values outside the spec's constraints.

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
