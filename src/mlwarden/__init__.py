"""mlwarden: pen-tests and guards machine-learning pipelines end to end.

The public API is small: :func:`mlwarden.audit.run_audit` runs an audit from a spec,
and the command line (``mlwarden --help``) wraps it.
"""

__version__ = "0.1.0"
