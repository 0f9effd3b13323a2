"""code.* — unsafe patterns in the pipeline's training and serving code (AST-based).

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
