"""endpoint.* checks: one per probe family, over one probe of the spec's ``model.endpoint`` per audit.

The endpoint is probed once (shared through the audit context) with the default bounds —
200 requests at most, 20 per second, 180 s — and, when the environment sets
``MLWARDEN_ENDPOINT_KEY``, that API key. ``mlwarden probe URL`` runs the same families with
bounds from its flags. Each check reports the issues of its family; every rule id
(``endpoint.<family>.<rule>``) is in the finding's evidence.
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import MlwardenError
from ...findings import Location
from ...registry import AuditContext, Check, Outcome, Skip
from ..common import Family, family_check

KEY_ENV = "MLWARDEN_ENDPOINT_KEY"

FAMILIES = (
    Family("endpoint.transport", "The endpoint is served over sound TLS",
           "`plaintext` (high): answers over plain HTTP or gRPC. `tls_legacy` (high): TLS 1.0/1.1 accepted. "
           "`cert_untrusted` (high): the certificate does not verify. `cert_expired` (high): outside its validity. "
           "`hostname_mismatch` (high): no subjectAltName matches the host. `cert_expiring` (low): under 21 days "
           "left. `grpc_reflection` (medium; low behind a key): gRPC server reflection lists every service.",
           "Without sound TLS, queries, predictions and API keys can be read and altered on the path; reflection "
           "hands an attacker the map of every RPC, management ones included.",
           "Serve only https:// / grpcs:// with a trusted certificate for the served name, TLS 1.2 or later, and "
           "reflection off in production.",
           ("OWASP-ML05", "AML.T0049", "NIST-MANAGE")),
    Family("endpoint.access", "Only authorised callers reach the model, and only their model",
           "`inference_open` (high): inference without credentials. `metadata_open` (medium): metadata without "
           "credentials. `admin_open` (critical for model load/unload, else high): repository index, model "
           "control, Triton stats/trace/logging/shared memory, KServe V1 list, over REST or gRPC — load/unload are "
           "asked only for a model name that does not exist. `plaintext_credentials` (high): the key is accepted "
           "without TLS. `other_models` (high): other models (from the repository index or guessed from the "
           "target's name) answer with the caller's credentials.",
           "An open inference route is the precondition of evasion, extraction and membership attacks; open "
           "model control lets anyone unload or swap the model; one tenant's key reaching another's model is a "
           "data and model leak.",
           "Require credentials on every route but health, scope each key to its models, and disable or firewall "
           "model-control APIs (e.g. run behind `mlwarden guard`).",
           ("OWASP-ML05", "AML.T0040", "AML.T0049", "NIST-MANAGE")),
    Family("endpoint.quotas", "Callers are rate-limited",
           "`no_rate_limit` (high): a short burst at the probe's rate met no 429/RESOURCE_EXHAUSTED. "
           "`no_retry_after` (low): throttling without Retry-After. A limit above the probe's rate or a budget "
           "above its burst cannot be excluded; the metrics give what was sent.",
           "Extraction and black-box evasion need thousands of queries; a per-caller rate limit and query "
           "budget make them slow, visible and expensive.",
           "Enforce per-key token-bucket rate limits and daily budgets, answering 429 with Retry-After.",
           ("OWASP-ML05", "AML.T0024.002", "AML.T0034", "NIST-MANAGE")),
    Family("endpoint.inputs", "Malformed and hostile inputs get a clean refusal",
           "One finding per case, `endpoint.inputs.<case>`: NaN, Infinity, ±1.79e308, integer overflow, text for "
           "floats, unknown datatype, wrong shape, missing inputs or data, extra fields and tensors, an oversize "
           "payload, JSON nested 100,000 deep, truncated JSON (REST), malformed protobuf and raw contents of the "
           "wrong length (gRPC). Accepted: medium (low for merely extreme values or extra fields); 5xx/INTERNAL or "
           "a refusal with a stack trace: medium; no answer or a dropped connection: high.",
           "A server that computes on garbage answers garbage and gives attackers a lever; one that crashes or "
           "stalls on a crafted request is a denial of service.",
           "Validate every request against the model's schema (datatype, shape, finite values in range, size and "
           "depth limits) before inference and answer 400/INVALID_ARGUMENT with a short message.",
           ("OWASP-ML01", "AML.T0029", "AML.T0049", "NIST-MEASURE")),
    Family("endpoint.disclosure", "The endpoint discloses nothing beyond the prediction",
           "`stack_trace` (high) in any answer; `banner` (low): framework/version in headers or errors; "
           "`probabilities` (medium, low when rounded to 2 decimals): full probability vectors by default or on "
           "request; `training_metadata` (medium): data locations, metrics, hyperparameters in model metadata; "
           "`cors_credentials` (high): any origin allowed with credentials; `cors_wildcard` (low).",
           "Confidence scores make extraction and membership inference far cheaper; traces and banners aim "
           "exploits; training details help replicate or poison the model; permissive CORS lets any web page "
           "query the model as the user.",
           "Return labels (or top-1 with a rounded score), generic errors, schema-only metadata, no version "
           "headers, and CORS only for listed origins.",
           ("OWASP-ML05", "OWASP-ML04", "AML.T0024", "AML.T0007", "NIST-MANAGE")),
    Family("endpoint.latency", "No request costs far more than an ordinary one",
           "`amplification`: the median time of a large-batch or extreme-value request is ≥ 20× an ordinary "
           "request's (medium) or ≥ 100×, or no answer in time (high).",
           "Requests that cost the server orders of magnitude more than they cost the caller are a cheap denial "
           "of service and run up the bill.",
           "Cap batch and request size, bound compute per request, and charge costly requests to the caller's "
           "quota by size.",
           ("AML.T0029", "AML.T0034", "NIST-MEASURE")),
)


def probe_once(ctx: AuditContext) -> Any:
    """The audit's one probe of the spec's endpoint (or the error that stopped it), shared by every check."""
    if "endpoint.probe" not in ctx.cache:
        from ...probe.base import ProbeOptions
        from ...probe.runner import run_probe

        url = ctx.spec.model.endpoint if ctx.spec.model else None
        assert url, "planned only when the spec names model.endpoint"
        try:
            ctx.cache["endpoint.probe"] = run_probe(url,
                                                    ProbeOptions(key=os.environ.get(KEY_ENV) or None))
        except MlwardenError as e:
            ctx.cache["endpoint.probe"] = e
    return ctx.cache["endpoint.probe"]


class EndpointCheck(Check):
    needs = ("endpoint",)
    stage = "serving"
    family: Family

    def run(self, ctx: AuditContext) -> Outcome:
        run = probe_once(ctx)
        if isinstance(run, Exception):
            raise Skip(f"the endpoint could not be probed: {run}")
        return self.outcome(run.families[self.id.split(".", 1)[1]], run.target.display)

    def outcome(self, result: Any, where: str) -> Outcome:
        """This family's findings and metrics from one probe (the audit's, or `mlwarden probe`'s)."""
        findings = [self.finding(
            key=(i.rule, where), severity=i.severity, title=i.title, description=i.description,
            remediation=i.remediation, evidence={"rule": i.rule, **i.evidence}, location=Location(artifact=where),
            references=i.references or self.references) for i in result.issues]
        metrics = dict(result.metrics)
        if result.skipped:
            metrics["not_tested"] = result.skipped
        return Outcome(findings=findings, metrics=metrics)


CHECKS: list[type[EndpointCheck]] = [family_check(EndpointCheck, f, __name__) for f in FAMILIES]
