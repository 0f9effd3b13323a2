"""A naive OIP v2 gRPC server (grpcio) for the probe's tests: reflection on, no TLS, no auth, no validation.

It serves ``inference.GRPCInferenceService`` from mlwarden's own generated stubs, plus raw-bytes
handlers for Triton's ``RepositoryIndex``/``RepositoryModelLoad`` (so model control is open), and
registers the real gRPC reflection service (grpcio-reflection). Errors abort with INTERNAL and
the Python traceback as details; NaN and any shape or datatype go through; the message size
limit is raised to 64 MiB so oversize requests are accepted.
"""

from __future__ import annotations

import time
import traceback
from concurrent import futures
from typing import Any

import grpc
import numpy as np
from grpc_reflection.v1alpha import reflection

from mlwarden.sources.oip import oip_v2_pb2 as pb
from mlwarden.sources.oip import oip_v2_pb2_grpc as pb_grpc
from tests.probe.rest_fixture import predict

MODELS = ("loan", "tenant-b-fraud", "loan-staging")


class NaiveService(pb_grpc.GRPCInferenceServiceServicer):
    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=request.name in MODELS)

    def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name="naive-oip", version="0.3")

    def ModelMetadata(self, request: Any, context: Any) -> Any:
        r = pb.ModelMetadataResponse(name=request.name, versions=["1"], platform="sklearn-1.4.2")
        r.inputs.add(name="features", datatype="FP64", shape=[-1, 4])
        r.outputs.add(name="predict", datatype="INT64", shape=[-1])
        r.outputs.add(name="predict_proba", datatype="FP64", shape=[-1, 2])
        r.parameters["training_data"].string_param = "s3://corp-ml/loans/train-2024-03.parquet"
        return r

    def ModelInfer(self, request: Any, context: Any) -> Any:
        try:
            context.send_initial_metadata((("server", "naive-oip/0.3 grpc-python/1.85"),))
            t = request.inputs[0]
            x = np.asarray(list(t.contents.fp64_contents), dtype=float).reshape(list(t.shape))
            time.sleep(min(1.5, 5e-5 * x.shape[0]))
            labels, proba = predict(x.reshape(-1, 4) if x.size % 4 == 0 else np.zeros((1, 4)))
        except Exception:  # noqa: BLE001 — the planted weakness: the trace goes back to the caller
            context.abort(grpc.StatusCode.INTERNAL, traceback.format_exc())
        r = pb.ModelInferResponse(model_name=request.model_name)
        o = r.outputs.add(name="predict", datatype="INT64", shape=[len(labels)])
        o.contents.int64_contents.extend(labels)
        p = r.outputs.add(name="predict_proba", datatype="FP64", shape=[len(labels), 2])
        p.contents.fp64_contents.extend([v for row in proba for v in row])
        return r


def _index(request: bytes, context: Any) -> bytes:
    out = b""
    for name in MODELS[:2]:
        entry = b"\x0a" + bytes([len(name)]) + name.encode()
        out += b"\x0a" + bytes([len(entry)]) + entry
    return out


def _load(request: bytes, context: Any) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, "no such model in the repository")


def serve() -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(NaiveService(), server)
    raw = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in
           (("RepositoryIndex", _index), ("RepositoryModelLoad", _load))}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("inference.GRPCInferenceService", raw),))
    reflection.enable_server_reflection(("inference.GRPCInferenceService", reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port
