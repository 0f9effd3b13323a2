"""Literal credentials in env values, argv, labels and build args of infra files.

Two signals, either enough: a *name* that says secret (``*_TOKEN``, ``AWS_SECRET_ACCESS_KEY``,
``--api-key``) holding a literal value, or a *value* shaped like a known token (Hugging Face
``hf_``, AWS ``AKIA``, GitHub ``ghp_``, OpenAI ``sk-``, NVIDIA ``nvapi-``, W&B 40-hex keys under
a W&B name). References (``$(VAR)``, ``${VAR}``, ``valueFrom``) and obvious placeholders are
not secrets. Values are never echoed whole: evidence keeps a short masked preview.
"""

from __future__ import annotations

import re

SECRET_NAME = re.compile(
    r"(?i)(^|[_.-])(token|secret|passw(or)?d|passwd|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"credentials?|auth[_-]?key|client[_-]?secret|wandb[_-]?api[_-]?key|hf[_-]?token|ngc[_-]?api[_-]?key)([_.-]|$)")
NOT_SECRET_NAME = re.compile(r"(?i)(_file|_path|_dir|_url|_uri|_endpoint|_id|_name|_mode|_type|_expir\w*|_ttl)$")
TOKEN_VALUE = re.compile(
    r"(hf_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|"
    r"sk-[A-Za-z0-9_-]{20,}|nvapi-[A-Za-z0-9_-]{20,}|xox[bpa]-[A-Za-z0-9-]{10,})")
REFERENCE = re.compile(r"^\s*(\$\(|\$\{|\$[A-Za-z_]|\{\{|<|changeme$|xxx+$|\*+$|example|dummy|placeholder|none$|null$|false$|true$)",
                       re.IGNORECASE)
SECRET_FLAGS = ("--api-key", "--token", "--password", "--ServerApp.token", "--NotebookApp.token",
                "--ServerApp.password", "--NotebookApp.password", "--hf-token", "--access-key", "--secret-key")


def mask(value: str) -> str:
    return value[:4] + "…" if len(value) > 6 else "…"


def is_literal(value: str | None) -> bool:
    return bool(value) and not REFERENCE.match(value or "") and len((value or "").strip()) >= 4


def secret_by_name(name: str, value: str | None) -> bool:
    """A secret-named key holding a literal value."""
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name) and is_literal(value)


def token_in(value: str | None) -> str | None:
    """The known-format token inside ``value``, if any."""
    m = TOKEN_VALUE.search(value or "")
    return m.group(1) if m else None


def secret_in_arg(word: str, following: str | None) -> str | None:
    """Why an argv word carries a secret: ``--api-key=abc``, ``--api-key abc``, ``…:X-Key=value`` of Triton."""
    if token_in(word):
        return "a known token format"
    for f in SECRET_FLAGS:
        if word.startswith(f + "=") and is_literal(word[len(f) + 1:]):
            return f"the value of {f}"
        if word == f and following is not None and not following.startswith("-") and is_literal(following):
            return f"the value of {f}"
    if word.startswith(("--http-restricted-api=", "--grpc-restricted-protocol=")):
        _, _, kv = word.partition("=")[2].partition(":")
        value = kv.partition("=")[2]
        if is_literal(value):
            return "the restricted-API key value (visible to anyone who can read the pod spec or `ps`)"
    return None
