"""Regenerate src/mlwarden/scan/allowlist_torch.txt from the installed PyTorch.

Run after upgrading torch: `python scripts/gen_torch_allowlist.py` (then
`python scripts/gen_trampolines.py`, which reads this list). The list is what a full-module
``torch.save`` of the standard ``torch.nn`` layers needs to unpickle, found by saving those
layers and recording every global the unpickler resolves — recorded, not guessed — kept
only where it is a layer class under ``torch.nn.modules`` or one of the tensor rebuild
helpers in ``torch._utils``/``torch._tensor``. Everything else a checkpoint names (a
custom module, ``torch.nn.functional.relu`` stored as an attribute) stays unknown.

A rebuild helper that calls an argument (``_rebuild_from_type_v2`` calls its first) is
listed here but admitted only together with that argument: see scan/trampolines.txt.
The unpickling below runs on files this script has just written, never on user content.
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from pathlib import Path

import warnings

import torch
from torch import nn

OUT = Path(__file__).resolve().parents[1] / "src" / "mlwarden" / "scan" / "allowlist_torch.txt"
_REBUILD_MODULES = ("torch._utils", "torch._tensor")


def standard_layers() -> list[nn.Module]:
    """One instance of each common standard layer, and the containers that hold them."""
    layers: list[nn.Module] = [
        nn.Linear(4, 8), nn.Bilinear(2, 2, 2), nn.Identity(), nn.Flatten(), nn.Unflatten(1, (2, 2)),
        nn.Conv1d(2, 2, 3), nn.Conv2d(2, 2, 3), nn.Conv3d(2, 2, 3),
        nn.ConvTranspose1d(2, 2, 3), nn.ConvTranspose2d(2, 2, 3), nn.ConvTranspose3d(2, 2, 3),
        nn.BatchNorm1d(4), nn.BatchNorm2d(4), nn.BatchNorm3d(4), nn.LayerNorm(4), nn.GroupNorm(2, 4),
        nn.InstanceNorm1d(4), nn.InstanceNorm2d(4), nn.LocalResponseNorm(2), nn.RMSNorm(4),
        nn.Dropout(), nn.Dropout1d(), nn.Dropout2d(), nn.Dropout3d(), nn.AlphaDropout(),
        nn.Embedding(10, 4), nn.EmbeddingBag(10, 4),
        nn.LSTM(4, 4), nn.GRU(4, 4), nn.RNN(4, 4), nn.LSTMCell(4, 4), nn.GRUCell(4, 4), nn.RNNCell(4, 4),
        nn.MaxPool1d(2), nn.MaxPool2d(2), nn.MaxPool3d(2), nn.AvgPool1d(2), nn.AvgPool2d(2),
        nn.AvgPool3d(2), nn.AdaptiveAvgPool1d(1), nn.AdaptiveAvgPool2d(1), nn.AdaptiveAvgPool3d(1),
        nn.AdaptiveMaxPool1d(1), nn.AdaptiveMaxPool2d(1), nn.Upsample(scale_factor=2),
        nn.ZeroPad2d(1), nn.ConstantPad1d(1, 0.0), nn.ReflectionPad2d(1), nn.PixelShuffle(2),
        nn.MultiheadAttention(4, 2),
        nn.TransformerEncoderLayer(4, 2, 8), nn.TransformerDecoderLayer(4, 2, 8),
    ]
    activations = ("ReLU ReLU6 LeakyReLU PReLU ELU SELU CELU GELU SiLU Mish Sigmoid Tanh Hardtanh"
                   " Hardswish Hardsigmoid Softplus Softsign Softshrink Hardshrink Tanhshrink"
                   " LogSigmoid Threshold GLU Softmax LogSoftmax Softmin Softmax2d")
    for name in activations.split():
        cls = getattr(nn, name)
        layers.append(cls(0.1, 0.0) if name == "Threshold" else cls())
    layers += [
        nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
        nn.ModuleList([nn.Linear(2, 2)]), nn.ModuleDict({"a": nn.ReLU()}),
        nn.ParameterList([nn.Parameter(torch.ones(2))]),
        nn.ParameterDict({"p": nn.Parameter(torch.ones(2))}),
    ]
    return layers


class _Recorder(pickle.Unpickler):
    """Resolves globals as usual (these are files we just wrote) and remembers each one."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, seen: set[str]) -> None:
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._seen = archive, prefix, seen

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        self._seen.add(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid):  # type: ignore[no-untyped-def]
        _, storage_type, key, _location, numel = pid
        raw = self._archive.read(f"{self._prefix}data/{key}")
        untyped = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=storage_type.dtype, _internal=True)


def recorded_globals() -> set[str]:
    seen: set[str] = set()
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
    for layer in standard_layers():
        buf = io.BytesIO()
        torch.save(layer, buf)
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
            pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
            _Recorder(zf.read(pkl), zf, pkl[: -len("data.pkl")], seen).load()
    # A checkpoint may also rebuild tensors through other helpers (subclassed tensors,
    # parameters with state, quantized, sparse and nested weights): take those that torch's
    # own weights_only unpickler admits for untrusted files, and no other.
    from torch._weights_only_unpickler import _get_allowed_globals

    seen |= {g for g in _get_allowed_globals() if g.rpartition(".")[2].startswith("_rebuild_")}
    return seen


def admitted(full: str) -> bool:
    module, _, name = full.rpartition(".")
    if module.startswith(_REBUILD_MODULES):
        return name.startswith("_rebuild_")
    if not module.startswith("torch.nn.modules."):
        return False
    obj = getattr(sys.modules.get(module), name, None)
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def render() -> str:
    names = sorted(g for g in recorded_globals() if admitted(g))
    return (f"# torch {torch.__version__}: standard torch.nn layers and tensor rebuild helpers"
            " (scripts/gen_torch_allowlist.py)\n" + "\n".join(names) + "\n")


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        same = OUT.read_text(encoding="utf-8") == text
        print("in sync" if same else f"{OUT} is out of date; run scripts/gen_torch_allowlist.py")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10)) - 1} names to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
