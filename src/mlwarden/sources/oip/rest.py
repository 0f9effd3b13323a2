"""The REST (HTTP/JSON) transport of the Open Inference Protocol v2, over httpx.

Every call has a deadline and a cap on the answer's size, follows no redirect, ignores
proxy and .netrc settings from the environment (so no credential is sent that the caller
did not give), and turns every failure into one :class:`SourceError` line that names the
server and, where it said one, the server's own message.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import numpy as np

from ...errors import SourceError
from .tensors import ModelMetadata, ServerError, Tensor, from_json, spec_from, to_json


class RestTransport:
    def __init__(self, base: str, model: str, version: str | None, *, where: str, timeout_s: float,
                 max_bytes: int, headers: dict[str, str], verify: bool = True) -> None:
        self.where = where
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._model_path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        self._http = httpx.Client(base_url=base, timeout=timeout_s, follow_redirects=False, trust_env=False,
                                  headers={"accept": "application/json", **headers}, verify=verify)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """(status, body) of one request, within the deadline and the size cap."""
        deadline = time.monotonic() + self.timeout_s
        content = None if body is None else json.dumps(body, allow_nan=False).encode()
        hdrs = {"content-type": "application/json"} if content is not None else {}
        try:
            with self._http.stream(method, path, content=content, headers=hdrs) as r:
                if 300 <= r.status_code < 400:
                    loc = r.headers.get("location", "?")
                    raise SourceError(f"{self.where}: the server redirects to {loc[:120]}; mlwarden follows no "
                                      "redirect — put the final URL in the spec")
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise SourceError(f"{self.where}: answer of {int(declared):,} bytes exceeds the "
                                      f"{self.max_bytes:,}-byte limit")
                buf = bytearray()
                # the deadline is checked between chunks: httpx's timeout bounds each read, not the
                # whole answer, and a server dripping bytes would otherwise hold the call forever
                for chunk in r.iter_bytes():
                    buf += chunk
                    if len(buf) > self.max_bytes:
                        raise SourceError(f"{self.where}: answer exceeds the {self.max_bytes:,}-byte limit")
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("deadline")
                return r.status_code, bytes(buf)
        except httpx.TimeoutException:
            raise SourceError(f"{self.where}: no complete answer within {self.timeout_s:g} s") from None
        except httpx.ConnectError as e:
            raise SourceError(f"{self.where}: cannot connect ({_reason(e)})") from None
        except httpx.HTTPError as e:
            raise SourceError(f"{self.where}: HTTP error ({_reason(e)})") from None

    def _json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, raw = self._call(method, path, body)
        if status >= 400:
            raise ServerError(f"{self.where}: HTTP {status}: {_server_message(raw)}")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise SourceError(f"{self.where}: the answer is not valid JSON ({_snippet(raw)})") from None
        if not isinstance(doc, dict):
            raise SourceError(f"{self.where}: the answer is JSON but not an object")
        return doc

    def _ok(self, path: str) -> bool:
        status, _ = self._call("GET", path)
        return 200 <= status < 300

    def live(self) -> bool:
        return self._ok("/v2/health/live")

    def ready(self) -> bool:
        return self._ok("/v2/health/ready")

    def model_ready(self) -> bool:
        return self._ok(self._model_path + "/ready")

    def metadata(self) -> ModelMetadata:
        doc = self._json("GET", self._model_path)
        ins, outs = doc.get("inputs") or [], doc.get("outputs") or []
        if not isinstance(ins, list) or not isinstance(outs, list):
            raise SourceError(f"{self.where}: model metadata has inputs/outputs that are not lists")
        versions = doc.get("versions") or []
        return ModelMetadata(str(doc.get("name", "")), tuple(str(v) for v in versions if v is not None),
                             str(doc.get("platform") or ""), tuple(spec_from(d, self.where) for d in ins),
                             tuple(spec_from(d, self.where) for d in outs))

    def infer(self, inputs: list[Tensor], outputs: list[str], parameters: dict[str, Any]) -> dict[str, np.ndarray]:
        body: dict[str, Any] = {"inputs": [to_json(t) for t in inputs]}
        if outputs:
            body["outputs"] = [{"name": n} for n in outputs]
        if parameters:
            body["parameters"] = parameters
        doc = self._json("POST", self._model_path + "/infer", body)
        outs = doc.get("outputs")
        if not isinstance(outs, list):
            raise SourceError(f"{self.where}: the inference answer has no outputs list")
        return dict(from_json(o, self.where) for o in outs)


def _reason(e: Exception) -> str:
    msg = str(e) or type(e).__name__
    if "refused" in msg.lower():
        return "connection refused"
    return msg.splitlines()[0][:160]


def _snippet(raw: bytes) -> str:
    text = raw[:80].decode("utf-8", "replace").replace("\n", " ").strip()
    return repr(text) if text else "empty body"


def _server_message(raw: bytes) -> str:
    """The server's own error line: OIP's ``{"error": msg}``, FastAPI's ``detail``, else the text."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        msg = doc.get("error") if doc.get("error") is not None else doc.get("detail")
        if isinstance(msg, list) and msg and isinstance(msg[0], dict):
            msg = msg[0].get("msg", msg[0])
        if msg is not None:
            return " ".join(str(msg).split())[:200]
    text = " ".join(raw[:400].decode("utf-8", "replace").split())
    return text[:200] or "no message"
