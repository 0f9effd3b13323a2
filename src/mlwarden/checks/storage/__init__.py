"""Checks over where the data and the model are stored: local permissions, S3 buckets."""

from . import local, s3  # noqa: F401
