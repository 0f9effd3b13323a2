#!/usr/bin/env bash
# Regenerate the Open Inference Protocol v2 gRPC stubs committed under src/mlwarden/sources/oip/.
#
# Run from anywhere: bash scripts/gen_oip_grpc.sh. Needs only python3 and the package index.
# grpcio-tools is pinned to 1.76 in a throwaway venv on purpose: its protoc writes protobuf 6.31
# gencode, which runs on every protobuf runtime from 6.31.1 up to 7.x (newer tools emit gencode
# that demands the newest runtime and would narrow mlwarden's protobuf range for nothing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q 'grpcio-tools==1.76.0'
cd "$root/src"
# -I src makes the generated imports absolute (mlwarden.sources.oip...), so they work inside the package.
"$tools/venv/bin/python" -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. --pyi_out=. \
  mlwarden/sources/oip/oip_v2.proto
# Build into a private descriptor pool, not the process-wide default one: another library in the
# same process (tritonclient, mlserver, kserve) may register the same `inference.*` names from its
# own .proto file, and the default pool refuses a second definition of a name.
sed -i 's/_descriptor_pool\.Default()\.AddSerializedFile/_POOL.AddSerializedFile/; s/^_sym_db = _symbol_database.Default()$/_sym_db = _symbol_database.Default()\n_POOL = _descriptor_pool.DescriptorPool()  # private: see scripts\/gen_oip_grpc.sh/' \
  mlwarden/sources/oip/oip_v2_pb2.py
# Generated code is not ours to lint or type-check.
for f in mlwarden/sources/oip/oip_v2_pb2.py mlwarden/sources/oip/oip_v2_pb2_grpc.py; do
  sed -i '1i # ruff: noqa\n# mypy: ignore-errors' "$f"
done
grep -q '_POOL.AddSerializedFile' mlwarden/sources/oip/oip_v2_pb2.py || { echo "post-processing failed" >&2; exit 1; }
echo "generated: $(ls mlwarden/sources/oip/)"
