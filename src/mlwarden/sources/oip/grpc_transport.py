"""The gRPC transport of the Open Inference Protocol v2 (``inference.GRPCInferenceService``).

Uses the stubs generated from ``oip_v2.proto``. Every call has a deadline; the channel
caps the size of an answer, ignores proxy settings from the environment, and every
``RpcError`` becomes one :class:`SourceError` line with the status and the server's message.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np

from ...errors import SourceError
from . import oip_v2_pb2 as pb
from . import oip_v2_pb2_grpc as pb_grpc
from .tensors import ModelMetadata, ServerError, Tensor, TensorSpec, fill_proto, from_proto, set_param


class GrpcTransport:
    def __init__(self, target: str, model: str, version: str | None, *, where: str, timeout_s: float,
                 max_bytes: int, headers: dict[str, str], tls: bool) -> None:
        self.where = where
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._model, self._version = model, version or ""
        self._meta = tuple((k.lower(), v) for k, v in headers.items())  # gRPC metadata keys are lower-case
        opts = [("grpc.max_receive_message_length", max_bytes), ("grpc.max_send_message_length", 64 << 20),
                ("grpc.enable_http_proxy", 0), ("grpc.enable_retries", 0)]
        self._channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials(), options=opts) if tls
                         else grpc.insecure_channel(target, options=opts))
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _rpc(self, name: str, request: Any) -> Any:
        try:
            return getattr(self._stub, name)(request, timeout=self.timeout_s, metadata=self._meta)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            transport = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)
            raise (SourceError if transport else ServerError)(self._describe(e)) from None

    def _describe(self, e: grpc.RpcError) -> str:
        code = e.code() if hasattr(e, "code") else None
        details = " ".join(str(e.details() if hasattr(e, "details") else e).split())
        if code == grpc.StatusCode.UNAVAILABLE:
            why = "connection refused" if "refused" in details.lower() else details[:160]
            return f"{self.where}: cannot connect ({why})"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"{self.where}: no complete answer within {self.timeout_s:g} s"
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details.lower():
            return f"{self.where}: answer exceeds the {self.max_bytes:,}-byte limit"
        name = code.name if code is not None else "error"
        return f"{self.where}: gRPC {name}: {details[:200] or 'no message'}"

    def live(self) -> bool:
        return bool(self._rpc("ServerLive", pb.ServerLiveRequest()).live)

    def ready(self) -> bool:
        return bool(self._rpc("ServerReady", pb.ServerReadyRequest()).ready)

    def model_ready(self) -> bool:
        try:
            return bool(self._rpc("ModelReady", pb.ModelReadyRequest(name=self._model, version=self._version)).ready)
        except ServerError:
            return False  # NOT_FOUND and friends: the model is not there, which is "not ready"

    def metadata(self) -> ModelMetadata:
        r = self._rpc("ModelMetadata", pb.ModelMetadataRequest(name=self._model, version=self._version))

        def spec(t: Any) -> TensorSpec:
            return TensorSpec(t.name, t.datatype.upper(), tuple(int(s) for s in t.shape),
                              {k: _param(v) for k, v in t.parameters.items()})

        return ModelMetadata(r.name, tuple(r.versions), r.platform, tuple(spec(t) for t in r.inputs),
                             tuple(spec(t) for t in r.outputs))

    def infer(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        req = pb.ModelInferRequest(model_name=self._model, model_version=self._version)
        for k, v in parameters.items():
            set_param(req.parameters[k], v)
        for t in inputs:
            fill_proto(req.inputs.add(), t)
        for n in outputs:
            req.outputs.add(name=n)
        r = self._rpc("ModelInfer", req)
        raw = list(r.raw_output_contents)
        if raw and len(raw) != len(r.outputs):
            raise SourceError(f"{self.where}: {len(raw)} raw contents for {len(r.outputs)} outputs")
        return dict(from_proto(o, raw[i] if raw else None, self.where) for i, o in enumerate(r.outputs))


def _param(p: Any) -> Any:
    which = p.WhichOneof("parameter_choice")
    return getattr(p, which) if which else None
