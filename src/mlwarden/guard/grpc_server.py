"""The guard's gRPC face: ``inference.GRPCInferenceService`` (OIP v2) over grpcio.

The servicer decodes each ``ModelInferRequest`` into the same :class:`~.wire.InferCall` the
REST face builds and runs the same :class:`~.gateway.Gateway`, so both protocols answer a
request alike; refusals map to status codes through :mod:`.errors` (429 →
``RESOURCE_EXHAUSTED`` with a ``retry-after`` trailer). The key travels as metadata
(``authorization: Bearer …`` or ``x-api-key``). Messages are capped at ``max_bytes``;
``ServerLive``/``ServerReady`` stay open for orchestrators, everything else needs a key.
With ``tls`` the server requires and verifies a client certificate (mTLS) when a client CA
is given.
"""

from __future__ import annotations

import logging
import math
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ..sources.oip import oip_v2_pb2 as pb
from ..sources.oip import oip_v2_pb2_grpc as pb_grpc  # the servicer base names the RPCs
from .errors import GuardConfigError, GuardError
from .gateway import Gateway
from .keys import bearer
from .wire import fill_proto, from_proto

log = logging.getLogger("mlwarden.guard")


def _meta(context: grpc.ServicerContext) -> dict[str, str]:
    return {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


class Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def _abort(self, context: grpc.ServicerContext, e: GuardError) -> Any:
        if e.retry_after is not None and e.status == 429:
            context.set_trailing_metadata((("retry-after", str(max(1, math.ceil(e.retry_after)))),))
        context.abort(getattr(grpc.StatusCode, e.grpc_code), e.message)

    def _key(self, context: grpc.ServicerContext) -> str | None:
        m = _meta(context)
        return bearer(m.get("authorization"), m.get("x-api-key"))

    def _guarded(self, context: grpc.ServicerContext, fn: Any) -> Any:
        try:
            return fn()
        except GuardError as e:
            return self._abort(context, e)
        except Exception as e:  # noqa: BLE001 — never a traceback to the client
            log.error("unhandled gRPC error: %s", type(e).__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self.gw.ready())

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            self.gw.key(self._key(context), context.peer())
            return pb.ServerMetadataResponse(name="mlwarden-guard", version="")

        return self._guarded(context, run)

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            self.gw.route(self.gw.key(self._key(context), context.peer()), request.name, request.version)
            return pb.ModelReadyResponse(ready=self.gw.ready())

        return self._guarded(context, run)

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            key = self.gw.key(self._key(context), context.peer())
            self.gw.route(key, request.name, request.version)
            m = self.gw.model_metadata(key)
            resp = pb.ModelMetadataResponse(name=m["name"], versions=m["versions"], platform=m["platform"])
            for t in m["inputs"]:
                resp.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
            for t in m["outputs"]:
                resp.outputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
            return resp

        return self._guarded(context, run)

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            answer = self.gw.call("grpc", self._key(context), request.model_name, request.model_version,
                                  context.peer() or "?", lambda: from_proto(request))
            return fill_proto(pb.ModelInferResponse(), answer)

        return self._guarded(context, run)


RPCS = {"ServerLive": pb.ServerLiveRequest, "ServerReady": pb.ServerReadyRequest, "ModelReady": pb.ModelReadyRequest,
        "ServerMetadata": pb.ServerMetadataRequest, "ModelMetadata": pb.ModelMetadataRequest,
        "ModelInfer": pb.ModelInferRequest}


def _handlers(servicer: Servicer) -> grpc.GenericRpcHandler:
    """The service with requests parsed here, so malformed protobuf is INVALID_ARGUMENT, not grpcio's INTERNAL."""

    def wrap(name: str, cls: Any) -> Any:
        method = getattr(servicer, name)

        def handle(raw: bytes, context: grpc.ServicerContext) -> Any:
            try:
                request = cls.FromString(raw)
            except DecodeError:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {cls.__name__} (not valid protobuf)")
            return method(request, context)

        return grpc.unary_unary_rpc_method_handler(handle, request_deserializer=None,
                                                   response_serializer=lambda m: m.SerializeToString())

    return grpc.method_handlers_generic_handler("inference.GRPCInferenceService",
                                                {name: wrap(name, cls) for name, cls in RPCS.items()})


def tls_credentials(cert: str, key: str, client_ca: str | None) -> grpc.ServerCredentials:
    try:
        pair = (Path(key).read_bytes(), Path(cert).read_bytes())
        ca = Path(client_ca).read_bytes() if client_ca else None
    except OSError as e:
        raise GuardConfigError(f"cannot read a TLS file: {e}") from None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def build_server(gw: Gateway, host: str, port: int, *, workers: int = 16, max_bytes: int = 4 << 20,
                 credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) gRPC server and the port it bound."""
    opts = [("grpc.max_receive_message_length", max_bytes), ("grpc.max_send_message_length", 64 << 20),
            ("grpc.so_reuseport", 0), ("grpc.max_concurrent_streams", 256)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="guard-grpc"),
                         options=opts, maximum_concurrent_rpcs=workers * 8)
    server.add_generic_rpc_handlers((_handlers(Servicer(gw)),))
    addr = f"{host}:{port}"
    try:
        bound = server.add_secure_port(addr, credentials) if credentials else server.add_insecure_port(addr)
    except RuntimeError:
        bound = 0
    if not bound:
        raise GuardConfigError(f"cannot listen for gRPC on {addr}; is the port free?")
    return server, bound
