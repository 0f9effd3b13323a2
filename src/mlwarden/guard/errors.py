"""The guard's errors: each carries the HTTP status and gRPC status code it answers with.

One table maps a refusal to both protocols, so REST and gRPC refuse the same request the
same way (401 ↔ UNAUTHENTICATED, 403 ↔ PERMISSION_DENIED, 429 ↔ RESOURCE_EXHAUSTED…).
Messages are shown to the client: they name what was wrong and never carry internals.
"""

from __future__ import annotations

from ..errors import MlwardenError


class GuardError(MlwardenError):
    """A request the guard refuses; ``status``/``grpc_code`` say how."""

    status = 400
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Invalid(GuardError):
    status, grpc_code = 400, "INVALID_ARGUMENT"


class Unauthenticated(GuardError):
    status, grpc_code = 401, "UNAUTHENTICATED"


class Forbidden(GuardError):
    status, grpc_code = 403, "PERMISSION_DENIED"


class NotFound(GuardError):
    status, grpc_code = 404, "NOT_FOUND"


class TooLarge(GuardError):
    status, grpc_code = 413, "INVALID_ARGUMENT"


class TooMany(GuardError):
    status, grpc_code = 429, "RESOURCE_EXHAUSTED"


class Unavailable(GuardError):
    status, grpc_code = 503, "UNAVAILABLE"


class UpstreamFailed(GuardError):
    status, grpc_code = 502, "UNAVAILABLE"


class GuardConfigError(MlwardenError):
    """The guard cannot start: a bad keys file, spec, certificate or port (exit code 2)."""
