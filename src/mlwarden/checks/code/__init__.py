"""code.* — unsafe patterns in the pipeline's training and serving code (AST-based)."""

from . import patterns  # noqa: F401
