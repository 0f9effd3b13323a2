"""Secrets in file contents: detect-secrets' regex plugins in-process, plus the ML tokens it lacks.

Used on the text files and build history of container images, where whole files are searched
(``secrets.py`` judges single values of manifests: a name and its literal). detect-secrets
knows the generic cloud and SaaS keys (AWS, GitHub, Slack, Stripe, private keys, OpenAI's
``T3BlbkFJ`` keys …). ML pipelines leak others it has no plugin for: Hugging Face ``hf_``
tokens, Weights & Biases API keys (40 hex characters, recognisable only next to
``WANDB_API_KEY`` or ``wandb``), NVIDIA NGC ``nvapi-`` keys, OpenAI project and service-account
keys, and AWS secret access keys written without quotes (``.env`` files, ``ENV`` lines).

Only the plugins' patterns are used: their ``analyze_line`` may *verify* a secret over the
network, which a scanner must never do. The entropy and keyword plugins are left out on
purpose: over the thousands of text files of an image they flag hashes and test fixtures.
Every secret leaves here redacted (first 4 characters and the length); the raw value is
never stored in a finding.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# detect-secrets plugins that match a token's own shape (no keyword guessing, no entropy)
_PLUGINS = (
    ("artifactory", "ArtifactoryDetector"), ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"), ("basic_auth", "BasicAuthDetector"),
    ("discord", "DiscordBotTokenDetector"), ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"), ("jwt", "JwtTokenDetector"),
    ("mailchimp", "MailchimpDetector"), ("npm", "NpmDetector"), ("openai", "OpenAIDetector"),
    ("private_key", "PrivateKeyDetector"), ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"), ("slack", "SlackDetector"), ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"), ("telegram_token", "TelegramBotTokenDetector"),
    ("twilio", "TwilioKeyDetector"),
)

# Detectors detect-secrets lacks: (type, pattern); group 1 holds the secret
_OWN: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Hugging Face token", re.compile(r"(?<![A-Za-z0-9_])(hf_[A-Za-z0-9]{30,})")),
    ("NVIDIA NGC API key", re.compile(r"(?<![A-Za-z0-9_-])(nvapi-[A-Za-z0-9_-]{40,})")),
    ("Weights & Biases API key",
     re.compile(r"(?i)wandb[A-Za-z0-9_.\-\s\"':=]{0,40}?(?<![0-9a-f])([0-9a-f]{40})(?![0-9a-f])")),
    ("OpenAI project key", re.compile(r"(?<![A-Za-z0-9_-])(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,})")),
    ("Anthropic API key", re.compile(r"(?<![A-Za-z0-9_-])(sk-ant-[a-z]{3}\d{2}-[A-Za-z0-9_-]{40,})")),
    ("AWS Secret Access Key",
     re.compile(r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])")),
)
MAX_LINE = 4096  # minified blobs: longer lines are cut, a token hides in its first few KB or not at all


@dataclass(frozen=True, kw_only=True)
class SecretHit:
    """One secret found in text: its type, 1-based line, and a redacted form (never the value)."""

    type: str
    line: int
    redacted: str
    length: int


def redact(secret: str) -> str:
    """The first 4 characters and the length: enough to find and rotate it, useless to steal."""
    return f"{secret[:4]}…({len(secret)} chars)"


@functools.lru_cache(maxsize=1)
def _plugins() -> tuple[Any, ...]:
    """detect-secrets' token-shaped plugins; none where the package is absent (own detectors still run)."""
    import importlib

    out = []
    for module, cls in _PLUGINS:
        try:
            out.append(getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), cls)())
        except (ImportError, AttributeError):  # an older detect-secrets lacks a plugin: skip it alone
            continue
    return tuple(out)


def _placeholder(secret: str) -> bool:
    """``hf_xxxxxxxx…`` and ``AKIAEXAMPLE…`` in docs and templates are not secrets."""
    body = secret.split("_", 1)[-1] if secret.startswith("hf_") else secret
    lower = body.lower()
    return len(set(body)) < 6 or "xxxx" in lower or "example" in lower or "your" in lower


def _plugin_values(plugin: Any, line: str) -> Iterator[str]:
    """The secrets a plugin's patterns match. Its own ``analyze_string`` returns ``findall``
    groups, which for some patterns is only the prefix (``ghp``): take the whole match unless a
    group is long enough to be the secret itself (AWS secret keys are matched with their name)."""
    for pattern in plugin.denylist:
        for m in pattern.finditer(line):
            groups = [g for g in m.groups() if g]
            yield groups[-1] if groups and len(groups[-1]) >= 16 else m.group(0)


def scan_line(line: str) -> Iterator[tuple[str, str]]:
    """(type, secret) pairs in one line of text, each secret once (own detectors first)."""
    line = line[:MAX_LINE]
    seen: list[str] = []
    candidates = [(kind, m.group(1)) for kind, pattern in _OWN for m in pattern.finditer(line)]
    candidates += [(p.secret_type, v) for p in _plugins() for v in _plugin_values(p, line)]
    for kind, value in candidates:
        if value and not any(value in s or s in value for s in seen) and not _placeholder(value):
            seen.append(value)
            yield kind, value


def find_secrets(text: str, *, max_hits: int = 50) -> list[SecretHit]:
    """Secrets in ``text``, redacted, at most ``max_hits`` (a dump of keys is one problem, not thousands)."""
    hits: list[SecretHit] = []
    for number, line in enumerate(text.splitlines(), 1):
        for kind, value in scan_line(line):
            hits.append(SecretHit(type=kind, line=number, redacted=redact(value), length=len(value)))
            if len(hits) >= max_hits:
                return hits
    return hits
