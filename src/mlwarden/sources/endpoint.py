"""A model behind a live Open Inference Protocol v2 endpoint (KServe V2, MLServer, Triton).

:class:`OipClient` speaks the protocol over REST (``http(s)://host:port[/prefix]/v2/models/NAME
[/versions/V]``) or gRPC (``grpc(s)://host:port/NAME[/versions/V]``): health, model metadata
and inference, in batches of at most ``batch_rows`` rows, each call with a deadline and a cap
on the answer's size. :class:`EndpointModel` puts it behind the :class:`~.model.Model` facade,
so attacks query an endpoint exactly as they query a local model, and see only what an
outsider sees: labels, and scores where the server gives them.

How rows are sent is read from the model's metadata: one named tensor per feature (with the
request parameter ``content_type: pd``, which MLServer decodes into a DataFrame with those
column names) or a single ``[n, d]`` tensor when the metadata declares one 2-D input. Servers
that declare nothing (MLServer's sklearn runtime) get named columns, so a model fitted on a
DataFrame checks the names itself. Labels are read from the ``predict`` output and scores
from ``predict_proba``, the output names of MLServer's and KServe's scikit-learn runtimes.

Credentials (``api_key`` or secret-looking ``headers``) are never sent over plain http/grpc
unless the caller says ``insecure=True``; redirects are never followed; proxy settings and
.netrc in the environment are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from ..errors import SourceError
from .model import FeatureSchema, Model, QueryBudget, infer_schema
from .oip.tensors import ModelMetadata, ServerError, Tensor, tensor

LABEL_OUTPUTS = ("predict", "label", "labels", "output_label", "class")
PROBA_OUTPUTS = ("predict_proba", "probabilities", "probability", "proba", "scores", "output_probability")
_SECRET_HINTS = ("auth", "key", "token", "secret", "cookie", "password")


@dataclass(frozen=True)
class EndpointUrl:
    protocol: Literal["rest", "grpc"]
    tls: bool
    base: str
    """REST: scheme://host:port[/prefix]; gRPC: host:port."""
    model: str
    version: str | None
    display: str
    """The URL as reports show it."""


def parse_endpoint(url: str) -> EndpointUrl:
    """Split an endpoint URL into protocol, server and model; one SourceError line when malformed."""
    u = urlparse(url)
    if u.scheme not in ("http", "https", "grpc", "grpcs") or not u.hostname:
        raise SourceError(f"endpoint {url!r} must be http(s)://host:port/v2/models/NAME or grpc(s)://host:port/NAME")
    if u.username or u.password:
        raise SourceError(f"endpoint {u.hostname}: credentials in the URL are not sent; pass an API key instead")
    try:
        port = u.port
    except ValueError:
        raise SourceError(f"endpoint {url!r} has an invalid port") from None
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    netloc = host + (f":{port}" if port else "")
    parts = [p for p in u.path.split("/") if p]
    if u.scheme in ("grpc", "grpcs"):
        model_parts, prefix = parts, ""
    else:
        idx = next((i for i in range(len(parts) - 1) if parts[i] == "v2" and parts[i + 1] == "models"), None)
        if idx is None:
            raise SourceError(f"endpoint {url!r}: an http endpoint's path must be /v2/models/NAME[/versions/V]")
        prefix, model_parts = "/".join(parts[:idx]), parts[idx + 2:]
    version = None
    if len(model_parts) == 3 and model_parts[1] == "versions":
        model_parts, version = model_parts[:1], model_parts[2]
    if len(model_parts) != 1:
        raise SourceError(f"endpoint {url!r} must name exactly one model (…/NAME or …/NAME/versions/V)")
    if u.scheme in ("grpc", "grpcs"):
        base = netloc if port else f"{netloc}:{443 if u.scheme == 'grpcs' else 80}"
        display = f"{u.scheme}://{base}/{model_parts[0]}" + (f"/versions/{version}" if version else "")
        return EndpointUrl("grpc", u.scheme == "grpcs", base, model_parts[0], version, display)
    base = f"{u.scheme}://{netloc}" + (f"/{prefix}" if prefix else "")
    display = f"{base}/v2/models/{model_parts[0]}" + (f"/versions/{version}" if version else "")
    return EndpointUrl("rest", u.scheme == "https", base, model_parts[0], version, display)


@dataclass(frozen=True)
class Layout:
    """How a batch of rows travels: one tensor per column, or one ``[n, d]`` tensor."""

    mode: Literal["columns", "tensor"]
    names: tuple[str, ...]
    tensor_name: str = "input-0"
    datatype: str = "FP64"
    label_output: str = "predict"
    proba_output: str = "predict_proba"


def choose_layout(meta: ModelMetadata, names: Sequence[str], force: str = "auto") -> Layout:
    """The layout the server expects, from its metadata; ``names`` when the metadata is silent."""
    outs = [o.name for o in meta.outputs]
    label = next((n for n in LABEL_OUTPUTS if n in outs), outs[0] if outs else "predict")
    proba = next((n for n in PROBA_OUTPUTS if n in outs), "predict_proba")
    ins = meta.inputs
    one_matrix = len(ins) == 1 and (len(ins[0].shape) == 2 and ins[0].shape[1] != 1 or ins[0].name not in names)
    if force == "tensor" or (force == "auto" and one_matrix):
        name, dt = (ins[0].name, ins[0].datatype) if len(ins) == 1 else ("input-0", "FP64")
        if dt not in ("FP64", "FP32"):
            dt = "FP64"
        if len(ins) == 1 and len(ins[0].shape) == 2 and ins[0].shape[1] not in (-1, len(names)):
            raise SourceError(f"{meta.name}: the endpoint takes {ins[0].shape[1]} features per row, "
                              f"the data has {len(names)} model columns")
        return Layout("tensor", tuple(names), name, dt, label, proba)
    if ins:
        missing = [t.name for t in ins if t.name not in names]
        if missing:
            raise SourceError(f"{meta.name}: the endpoint reads inputs the data lacks: {', '.join(missing[:8])}")
        names = [t.name for t in ins]
    return Layout("columns", tuple(names), label_output=label, proba_output=proba)


class OipClient:
    """One Open Inference Protocol v2 server and model, over REST or gRPC."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, max_response_bytes: int = 32 << 20,
                 batch_rows: int = 1000, api_key: str | None = None, headers: dict[str, str] | None = None,
                 insecure: bool = False) -> None:
        self.endpoint = parse_endpoint(url)
        self.where = self.endpoint.display
        self.batch_rows = max(1, int(batch_rows))
        hdrs = dict(headers or {})
        if api_key:
            hdrs["authorization"] = f"Bearer {api_key}"
        secret = [k for k in hdrs if any(h in k.lower() for h in _SECRET_HINTS)]
        if secret and not self.endpoint.tls and not insecure:
            raise SourceError(f"{self.where}: refusing to send credentials ({', '.join(secret)}) without TLS; "
                              "use https:// or grpcs://, or allow it explicitly (insecure=True)")
        self._args = (timeout_s, max_response_bytes, hdrs)
        self._transport: Any = None
        self._meta: ModelMetadata | None = None

    @property
    def transport(self) -> Any:
        if self._transport is None:  # opened lazily, so a pickled client reconnects where it lands
            timeout_s, max_bytes, hdrs = self._args
            e = self.endpoint
            if e.protocol == "grpc":
                from .oip.grpc_transport import GrpcTransport

                self._transport = GrpcTransport(e.base, e.model, e.version, where=self.where, timeout_s=timeout_s,
                                                max_bytes=max_bytes, headers=hdrs, tls=e.tls)
            else:
                from .oip.rest import RestTransport

                self._transport = RestTransport(e.base, e.model, e.version, where=self.where, timeout_s=timeout_s,
                                                max_bytes=max_bytes, headers=hdrs)
        return self._transport

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_transport": None}

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def __enter__(self) -> OipClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def live(self) -> bool:
        return bool(self.transport.live())

    def ready(self) -> bool:
        return bool(self.transport.ready())

    def model_ready(self) -> bool:
        return bool(self.transport.model_ready())

    def metadata(self) -> ModelMetadata:
        if self._meta is None:
            self._meta = self.transport.metadata()
        return self._meta

    def infer(self, inputs: list[Tensor], outputs: Sequence[str] = (), parameters: dict[str, Any] | None = None
              ) -> dict[str, np.ndarray]:
        """One raw inference call: output name → array."""
        return dict(self.transport.infer(list(inputs), list(outputs), dict(parameters or {})))

    def predict(self, X: pd.DataFrame, layout: Layout, *, proba: bool) -> np.ndarray:
        """Labels (shape ``[n]``) or scores (``[n, k]``) for every row, ``batch_rows`` rows per request."""
        want = layout.proba_output if proba else layout.label_output
        parts = []
        for lo in range(0, len(X), self.batch_rows):
            chunk = X.iloc[lo:lo + self.batch_rows]
            out = self.infer(_encode(chunk, layout), [want], {"content_type": "pd"} if layout.mode == "columns" else {})
            if want not in out:
                raise SourceError(f"{self.where}: the answer lacks output {want!r} (it has: {', '.join(out) or 'none'})")
            parts.append(_rows(out[want], len(chunk), want, proba, self.where))
        return np.concatenate(parts) if parts else np.empty((0, 0) if proba else 0)


def _encode(chunk: pd.DataFrame, layout: Layout) -> list[Tensor]:
    if layout.mode == "tensor":
        try:
            mat = chunk[list(layout.names)].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise SourceError("the endpoint takes one numeric tensor, but a model column is not numeric") from None
        return [Tensor(layout.tensor_name, layout.datatype, mat.astype(np.float32 if layout.datatype == "FP32" else np.float64))]
    return [tensor(n, _column(chunk[n]).reshape(-1, 1)) for n in layout.names]


def _column(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.to_numpy()
    return s.astype(object).to_numpy()


def _rows(arr: np.ndarray, n: int, name: str, proba: bool, where: str) -> np.ndarray:
    if proba:
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2:
            raise SourceError(f"{where}: output {name!r} has shape {list(arr.shape)}, expected [{n}, classes]")
        return arr.astype(np.float64)
    if arr.size != n or (arr.ndim == 2 and arr.shape[1] != 1) or arr.ndim > 2:
        raise SourceError(f"{where}: output {name!r} has shape {list(arr.shape)}, expected [{n}] labels")
    return arr.reshape(n)


class EndpointModel(Model):
    """A classifier behind an OIP v2 endpoint, seen as an outsider sees it."""

    kind = "endpoint"

    def __init__(self, client: OipClient, layout: Layout, *, schema: FeatureSchema, classes: Sequence[Any] | np.ndarray,
                 budget: QueryBudget, exposes_proba: bool) -> None:
        super().__init__(schema=schema, classes=list(classes), budget=budget, exposes_proba=exposes_proba,
                         where=client.where)
        self.client = client
        self.layout = layout

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        labels = self.client.predict(X, self.layout, proba=False)
        if self.classes.dtype.kind in "biuf" and labels.dtype.kind in "biuf":
            cast = labels.astype(self.classes.dtype)
            if np.array_equal(cast, labels):  # same labels, the dtype a local model would answer with
                return cast
        return labels

    def _predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.client.predict(X, self.layout, proba=True)
        if len(self.classes) and p.shape[1] != len(self.classes):
            raise SourceError(f"{self.where}: scores for {p.shape[1]} classes, but the label has {len(self.classes)}")
        return p


def open_endpoint_model(url: str, *, spec: Any = None, data: pd.DataFrame | None = None,
                        budget: QueryBudget | None = None, excluded: set[str] | None = None,
                        features: Sequence[str] | None = None, classes: Sequence[Any] | np.ndarray | None = None,
                        layout: Literal["auto", "columns", "tensor"] = "auto", **client_args: Any) -> EndpointModel:
    """The endpoint's model behind the :class:`Model` facade, checked ready and probed once.

    Columns: ``features``, else the inputs the metadata names, else ``data``'s columns less
    ``excluded``. Classes: ``classes``, else the sorted labels of ``data[spec.data.label]``,
    else ``0..k-1``. Whether scores are exposed is read from the metadata or, when it is
    silent, by asking one row of ``data`` for them — that row is charged to the budget.
    ``client_args`` go to :class:`OipClient` (timeout_s, api_key, headers, insecure, ...).
    """
    budget = budget if budget is not None else QueryBudget(spec.attacks.queries if spec is not None else None)
    client = OipClient(url, **client_args)
    if not client.model_ready():
        meta_err = _metadata_error(client)
        raise SourceError(meta_err or f"{client.where}: the model is not ready on the server")
    meta = client.metadata()
    label = getattr(getattr(spec, "data", None), "label", None)
    excluded = set(excluded or ())
    if features is not None:
        names = list(features)
    elif meta.inputs and layout != "tensor" and not (len(meta.inputs) == 1 and len(meta.inputs[0].shape) == 2):
        names = [t.name for t in meta.inputs]
    elif data is not None:
        names = [c for c in data.columns if c not in excluded]
    else:
        raise SourceError(f"{client.where}: the metadata names no inputs; give the data so mlwarden knows the columns")
    lay = choose_layout(meta, names, layout)
    schema = infer_schema(list(lay.names), data, getattr(spec, "features", None))
    if classes is None and data is not None and label in data.columns:
        classes = np.unique(data[label].dropna().to_numpy())
    exposes = any(o.name == lay.proba_output for o in meta.outputs)
    if not exposes and data is not None and len(data) and all(n in data.columns for n in lay.names):
        budget.charge(1)  # the probe is a real query
        try:
            p = client.predict(data[list(lay.names)].iloc[:1], lay, proba=True)
            exposes = True
            if classes is None:
                classes = np.arange(p.shape[1])
        except ServerError:
            exposes = False  # the server refuses scores: labels only
    return EndpointModel(client, lay, schema=schema, classes=classes if classes is not None else [],
                         budget=budget, exposes_proba=exposes)


def _metadata_error(client: OipClient) -> str | None:
    try:
        client.metadata()
    except SourceError as e:
        return str(e)
    return None
