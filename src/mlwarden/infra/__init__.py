"""Serving infrastructure: Dockerfiles, compose, Kubernetes/Helm YAML, ML-platform configs.

The public entry points live in :mod:`mlwarden.infra.scan` (``scan_infra``,
``referenced_models``) and :mod:`mlwarden.infra.detect` (``looks_like_infra``); this
package ``__init__`` imports nothing so that ``mlwarden scan`` pays for infra parsers only
when it meets an infra file. The finding record is :class:`mlwarden.infra.base.InfraIssue`.
"""
