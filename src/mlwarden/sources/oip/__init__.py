"""Generated gRPC stubs of the Open Inference Protocol v2 (``inference.GRPCInferenceService``).

``oip_v2.proto`` is the interface; ``oip_v2_pb2*.py`` are generated from it by
``scripts/gen_oip_grpc.sh`` and committed, so installing mlwarden needs no protoc.
Only :mod:`mlwarden.sources.endpoint` imports them, and only for ``grpc://`` endpoints.
"""
