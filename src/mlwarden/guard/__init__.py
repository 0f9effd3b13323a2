"""The guard: a gateway in front of a model that speaks the Open Inference Protocol v2.

``mlwarden guard`` serves the spec's model (safe-loaded) or proxies an upstream OIP v2
server over REST (:mod:`.app`, FastAPI/uvicorn) and gRPC (:mod:`.grpc_server`). Both
protocols decode into one :class:`~.wire.InferCall` and go through one pipeline
(:mod:`.gateway`): API key (:mod:`.keys`) → rate limit → input schema (:mod:`.schema`) →
daily budget → attack detection (:mod:`.detect`) → model (:mod:`.backend`) → output policy
(:mod:`.output`) → audit log (:mod:`.auditlog`), so REST and gRPC agree by construction.
Nothing here is imported by the audit half; the server packages load only for ``guard``.
"""
