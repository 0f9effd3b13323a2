"""infra.* — serving infrastructure: Dockerfiles, compose, Kubernetes/ML custom resources, platform configs, images.

Its modules load on demand (see ``mlwarden.checks.CATALOG``).
"""
