"""Scanners for model formats that are not pickles.

Each public scanner has the signature ``fn(stream, ctx, where) -> None``: ``stream`` is
seekable and positioned at 0, findings go to ``ctx.add``, and hostile input never raises —
a file that cannot be parsed becomes a ``<format>.parse_error`` issue. None of them loads,
imports or renders what it scans: ONNX and SavedModel are read with a small wire-format
reader (:mod:`.protobuf`), GGUF and safetensors with bounded header walks, Keras configs as
JSON, and GGUF chat templates are only *parsed* by Jinja2, never rendered.
"""

from .gguf import scan_gguf, template_risks
from .keras import scan_keras_config, scan_keras_h5
from .onnx import scan_onnx
from .safetensors import scan_safetensors
from .savedmodel import scan_graphdef_pb, scan_savedmodel_pb

__all__ = [
    "scan_gguf",
    "scan_graphdef_pb",
    "scan_keras_config",
    "scan_keras_h5",
    "scan_onnx",
    "scan_safetensors",
    "scan_savedmodel_pb",
    "template_risks",
]
