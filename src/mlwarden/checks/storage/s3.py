"""storage.s3.* — whether the S3 buckets holding the data and the model are exposed or fragile.

For every ``s3://`` location of the spec (datasets and the model artifact), bucket settings
are read through boto3 (the ``s3`` extra, imported lazily): the public access block, the
bucket ACL and policy, the ACLs of the spec's objects (``storage.s3.public_access``), and
default encryption, versioning and object lock (``storage.s3.protection``). Both checks
cover every S3 location whatever the stage: a bucket's settings are shared by all it holds,
so splitting them by stage would repeat each finding; the evidence names the spec entries
each bucket serves. The endpoint follows boto3's own configuration (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``, profiles), so S3-compatible servers work too.

A setting the auditor may not read (AccessDenied) is an info finding, never a silent pass;
missing credentials or an unreachable endpoint make the check's status ``error``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from ...findings import Location, Severity
from ...registry import AuditContext, Check, Outcome, Skip, register
from ...spec import Spec

MAX_OBJECTS = 1_000
SAMPLE = 20
PUBLIC = {"http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
          "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "AuthenticatedUsers"}
_WRITE_GRANTS = {"WRITE", "WRITE_ACP", "FULL_CONTROL"}
_DENIED = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden", "UnauthorizedAccess"}
_NOT_SET = {"NoSuchPublicAccessBlockConfiguration", "NoSuchBucketPolicy",
            "ServerSideEncryptionConfigurationNotFoundError", "ObjectLockConfigurationNotFoundError"}
_WRITE_OPS = ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl", "s3:PutBucketPolicy", "s3:PutBucketAcl",
              "s3:DeleteBucket")
_READ_OPS = ("s3:GetObject", "s3:ListBucket")
_PAB_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
_NEEDS_BOTO = "install mlwarden[s3] to audit S3 buckets (needs boto3)"


class S3AuditError(Exception):
    """S3 could not be queried at all (credentials, endpoint, missing bucket): the check errors."""


@dataclass
class Denied:
    code: str


@dataclass
class Bucket:
    name: str
    roles: dict[str, str] = field(default_factory=dict)  # spec entry → key or prefix


def s3_buckets(spec: Spec) -> list[Bucket]:
    """The buckets the spec's s3:// locations live in, with the spec entries each serves."""
    entries = {f"data.{s}": loc for s, loc in spec.data.splits().items()}
    if spec.model and spec.model.artifact:
        entries["model.artifact"] = spec.model.artifact
    out: dict[str, Bucket] = {}
    for role, loc in entries.items():
        if loc.startswith(("s3://", "s3a://")):
            bucket, _, key = loc.split("://", 1)[1].partition("/")
            out.setdefault(bucket, Bucket(bucket)).roles[role] = key
    return [out[b] for b in sorted(out)]


def client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise Skip(_NEEDS_BOTO) from None
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    # a fresh session: the default one caches credentials and endpoint from its first use
    return boto3.session.Session().client("s3", config=cfg)


def get(s3: Any, op: str, **kw: Any) -> dict[str, Any] | Denied | None:
    """Call ``op``: its response, None when the setting is not configured, Denied when forbidden."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        out: dict[str, Any] = getattr(s3, op)(**kw)
        return out
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in _NOT_SET or (op == "head_object" and code in ("404", "NoSuchKey", "NotFound")):
            return None
        if code in _DENIED:
            return Denied(code)
        where = kw.get("Bucket", "")
        if code == "NoSuchBucket":
            raise S3AuditError(f"bucket {where!r} does not exist (or not at this endpoint); fix the spec's "
                               f"s3:// locations or AWS_ENDPOINT_URL") from e
        raise S3AuditError(f"{op} on bucket {where!r} failed: {code}: {e}") from e
    except NoCredentialsError as e:
        raise S3AuditError("no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE "
                           "for an account that may read the bucket settings") from e
    except BotoCoreError as e:
        raise S3AuditError(f"cannot reach S3 ({e}); check the network and AWS_ENDPOINT_URL / AWS_REGION") from e


class _S3Check(Check):
    needs = ("data",)
    stage = "data"

    def buckets(self) -> tuple[Any, list[Bucket]]:
        buckets = s3_buckets(self.spec)
        if not buckets:
            raise Skip("no s3:// location in the spec")
        return client(), buckets

    def denied(self, bucket: Bucket, setting: str, d: Denied) -> Any:
        return self.finding(
            key=("unreadable", bucket.name, setting), severity=Severity.INFO,
            title=f"Could not read {setting} of bucket {bucket.name} ({d.code})",
            description=(f"The account running the audit may not read this setting, so whether bucket "
                         f"{bucket.name} is safe in this respect is unknown — it was not assumed to be."),
            remediation=f"Grant the auditor read access to the bucket's {setting} (s3:Get* on the bucket).",
            evidence={"bucket": bucket.name, "setting": setting, "error": d.code, "serves": sorted(bucket.roles)},
            location=Location(artifact=f"s3://{bucket.name}"))


@register
class S3PublicAccess(_S3Check):
    """Finds S3 buckets and objects holding the pipeline's data or model that the public can reach.

    **What it finds.** For every bucket named by an ``s3://`` location of the spec: a missing
    or partial public access block (any of its four flags off); ACL grants to ``AllUsers`` or
    ``AuthenticatedUsers``; policy statements that Allow Principal ``*`` without a
    Condition; and public grants in the ACLs of the spec's objects (up to 1,000 objects per
    location; the metrics say when the bound was hit). A public grant that the bucket's public
    access block neutralises is still reported, at low. The account-level public access block
    is not read. Settings the auditor may not read are info findings.

    **Severity.** Public access block missing or partial: high. ACL or policy letting the
    public write (WRITE, FULL_CONTROL; Put*, Delete*, ``s3:*``): critical; letting it read: high;
    other public policy actions: medium. Public object ACL: high (critical for write-ACP).

    **Why it matters.** A bucket anyone can write is a poisoning channel into training data
    or a swapped model (OWASP ML02, ATLAS AML.T0020, AML.T0010); one anyone can read leaks
    the data and the model (AML.T0035, OWASP ML05).

    **How to fix.** Turn on all four flags of the bucket's public access block, remove
    public ACL grants (set Object Ownership to "bucket owner enforced" to disable ACLs) and
    public policy statements; grant access to named roles only.
    """

    id = "storage.s3.public_access"
    title = "S3 buckets with data or models are not public"
    references = ("OWASP-ML02", "OWASP-ML05", "AML.T0020", "AML.T0010.002", "AML.T0035", "NIST-MANAGE")

    def run(self, ctx: AuditContext) -> Outcome:
        s3, buckets = self.buckets()
        findings: list[Any] = []
        metrics: dict[str, Any] = {"object_limit": MAX_OBJECTS, "buckets": {}}
        for b in buckets:
            m: dict[str, Any] = {"serves": sorted(b.roles)}
            pab = get(s3, "get_public_access_block", Bucket=b.name)
            flags: dict[str, bool] = {}
            if isinstance(pab, Denied):
                findings.append(self.denied(b, "public access block", pab))
                m["public_access_block"] = "unreadable"
            else:
                flags = dict((pab or {}).get("PublicAccessBlockConfiguration", {}))
                m["public_access_block"] = {f: bool(flags.get(f)) for f in _PAB_FLAGS} if pab else "missing"
                off = [f for f in _PAB_FLAGS if not flags.get(f)]
                if off:
                    findings.append(self._pab(b, pab is None, off))
            ignore_acls, restrict_policy = bool(flags.get("IgnorePublicAcls")), bool(flags.get("RestrictPublicBuckets"))
            acl = get(s3, "get_bucket_acl", Bucket=b.name)
            if isinstance(acl, Denied):
                findings.append(self.denied(b, "ACL", acl))
            else:
                grants = _public_grants(acl or {})
                m["public_acl_grants"] = [f"{g}:{p}" for g, p in grants]
                findings += [self._acl(b, g, p, ignore_acls) for g, p in grants]
            pol = get(s3, "get_bucket_policy", Bucket=b.name)
            if isinstance(pol, Denied):
                findings.append(self.denied(b, "policy", pol))
            elif pol is not None:
                stmts = _public_statements(pol.get("Policy", "{}"))
                m["public_policy_statements"] = len(stmts)
                findings += [self._policy(b, i, st, restrict_policy) for i, st in stmts]
            m["objects"] = self._objects(s3, b, ignore_acls, findings)
            metrics["buckets"][b.name] = m
        return Outcome(findings=findings, metrics=metrics)

    def _pab(self, b: Bucket, missing: bool, off: list[str]) -> Any:
        what = "has no public access block" if missing else f"has a partial public access block ({', '.join(off)} off)"
        return self.finding(
            key=("public_access_block", b.name), severity=Severity.HIGH,
            title=f"Bucket {b.name} {what}",
            description=("Without all four flags of the public access block, one ACL or policy edit is enough to "
                         "publish the data or model this bucket holds; the block is the guard rail against it."),
            remediation=(f"aws s3api put-public-access-block --bucket {b.name} --public-access-block-configuration "
                         "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"),
            evidence={"bucket": b.name, "configured": not missing, "flags_off": off, "serves": sorted(b.roles)},
            location=Location(artifact=f"s3://{b.name}"))

    def _acl(self, b: Bucket, grantee: str, perm: str, neutralised: bool) -> Any:
        sev = Severity.CRITICAL if perm in _WRITE_GRANTS else Severity.HIGH
        note = ""
        if neutralised:
            sev, note = Severity.LOW, " The public access block's IgnorePublicAcls currently neutralises it."
        return self.finding(
            key=("acl", b.name, grantee, perm), severity=sev,
            title=f"Bucket {b.name}'s ACL grants {perm} to {grantee}",
            description=(f"{grantee} ({'anyone on the internet' if grantee == 'AllUsers' else 'any AWS account'}) "
                         f"holds {perm} on the bucket: "
                         f"{'they can add or overwrite data and models' if perm in _WRITE_GRANTS else 'they can list it'}."
                         + note),
            remediation=f"Remove the grant (aws s3api put-bucket-acl --bucket {b.name} --acl private) and disable ACLs.",
            evidence={"bucket": b.name, "grantee": grantee, "permission": perm, "neutralised": neutralised,
                      "serves": sorted(b.roles)},
            location=Location(artifact=f"s3://{b.name}"))

    def _policy(self, b: Bucket, index: int, st: dict[str, Any], neutralised: bool) -> Any:
        actions = _as_list(st.get("Action")) or ["(NotAction: everything else)"]
        writes = "NotAction" in st or any(_covers(a, _WRITE_OPS) or a.lower().startswith(("s3:put", "s3:delete"))
                                          for a in actions)
        reads = any(_covers(a, _READ_OPS) or a.lower().startswith(("s3:get", "s3:list")) for a in actions)
        sev = Severity.CRITICAL if writes else Severity.HIGH if reads else Severity.MEDIUM
        note = ""
        if neutralised:
            sev, note = Severity.LOW, " The public access block's RestrictPublicBuckets currently neutralises it."
        return self.finding(
            key=("policy", b.name, st.get("Sid") or index), severity=sev,
            title=f"Bucket {b.name}'s policy allows {', '.join(actions)} to everyone",
            description=("A policy statement with Principal \"*\", Effect Allow and no Condition opens these actions "
                         "to anyone" + (": they can write or delete data and models." if writes else ".") + note),
            remediation="Name the principals that need access, or add a Condition (aws:PrincipalOrgID, aws:SourceVpce).",
            evidence={"bucket": b.name, "statement": st, "writes": writes, "neutralised": neutralised,
                      "serves": sorted(b.roles)},
            location=Location(artifact=f"s3://{b.name}"))

    def _objects(self, s3: Any, b: Bucket, ignore_acls: bool, findings: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role, key in sorted(b.roles.items()):
            listed = _object_keys(s3, b.name, key)
            if isinstance(listed, Denied):
                findings.append(self.denied(b, f"object listing of {role}", listed))
                out[role] = {"objects": "unreadable"}
                continue
            keys, truncated = listed
            public: list[dict[str, Any]] = []
            denied: Denied | None = None
            for k in keys:
                acl = get(s3, "get_object_acl", Bucket=b.name, Key=k)
                if isinstance(acl, Denied):
                    denied = acl
                    continue
                public += [{"key": k, "grantee": g, "permission": p} for g, p in _public_grants(acl or {})]
            out[role] = {"objects": len(keys), "truncated": truncated, "public_grants": len(public)}
            if denied:
                findings.append(self.denied(b, f"object ACLs of {role}", denied))
            if public:
                findings.append(self._object_acl(b, role, key, public, ignore_acls))
        return out

    def _object_acl(self, b: Bucket, role: str, key: str, public: list[dict[str, Any]], neutralised: bool) -> Any:
        writes = any(p["permission"] in ("WRITE_ACP", "FULL_CONTROL") for p in public)
        sev = Severity.LOW if neutralised else Severity.CRITICAL if writes else Severity.HIGH
        objects = sorted({p["key"] for p in public})
        return self.finding(
            key=("object_acl", b.name, role), severity=sev,
            title=f"{len(objects)} object(s) of {role} are public through their ACLs",
            description=("The objects' own ACLs grant access to everyone, whatever the bucket ACL says"
                         + (" (the public access block's IgnorePublicAcls currently neutralises it)." if neutralised
                            else ": anyone can download this data or model.")),
            remediation=f"aws s3api put-object-acl --acl private on each object, and disable ACLs on {b.name}.",
            evidence={"bucket": b.name, "role": role, "objects": len(objects), "grants": public[:SAMPLE],
                      "neutralised": neutralised},
            location=Location(artifact=f"s3://{b.name}/{key}"))


@register
class S3Protection(_S3Check):
    """Finds S3 buckets with data or models that lack encryption, versioning or object lock.

    **What it finds.** For every bucket named by an ``s3://`` location of the spec: no
    default encryption; versioning never enabled or suspended; object lock not configured.
    Settings the auditor may not read are info findings.

    **Severity.** No default encryption: medium. Versioning not enabled: medium. No object
    lock: low.

    **Why it matters.** Without versioning, an overwritten training file or model is gone:
    poisoning can't be traced or rolled back (OWASP ML02, ATLAS AML.T0059); object lock
    makes reviewed data immutable; encryption at rest limits what a leaked disk or a
    mis-scoped reader exposes.

    **How to fix.** ``aws s3api put-bucket-versioning --versioning-configuration
    Status=Enabled``, ``put-bucket-encryption`` (SSE-KMS), and create buckets for reviewed
    data with object lock in governance or compliance mode.
    """

    id = "storage.s3.protection"
    title = "S3 buckets with data or models are encrypted and versioned"
    references = ("OWASP-ML02", "AML.T0059", "AML.T0020", "NIST-MANAGE")

    def run(self, ctx: AuditContext) -> Outcome:
        s3, buckets = self.buckets()
        findings: list[Any] = []
        metrics: dict[str, Any] = {"buckets": {}}
        for b in buckets:
            m: dict[str, Any] = {"serves": sorted(b.roles)}
            enc = get(s3, "get_bucket_encryption", Bucket=b.name)
            ver = get(s3, "get_bucket_versioning", Bucket=b.name)
            lock = get(s3, "get_object_lock_configuration", Bucket=b.name)
            for setting, value in (("encryption", enc), ("versioning", ver), ("object lock", lock)):
                if isinstance(value, Denied):
                    findings.append(self.denied(b, setting, value))
            if not isinstance(enc, Denied):
                rules = (enc or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
                algos = sorted({r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm", "?") for r in rules})
                m["encryption"] = algos or "none"
                if not rules:
                    findings.append(self._gap(b, "encryption", Severity.MEDIUM,
                                              f"Bucket {b.name} has no default encryption",
                                              "Objects are stored unencrypted unless each writer asks for it.",
                                              f"aws s3api put-bucket-encryption --bucket {b.name} "
                                              "--server-side-encryption-configuration "
                                              "'{\"Rules\":[{\"ApplyServerSideEncryptionByDefault\":"
                                              "{\"SSEAlgorithm\":\"aws:kms\"}}]}'"))
            if not isinstance(ver, Denied):
                status = (ver or {}).get("Status") or "never enabled"
                m["versioning"] = status
                if status != "Enabled":
                    findings.append(self._gap(b, "versioning", Severity.MEDIUM,
                                              f"Bucket {b.name} is not versioned ({status})",
                                              "An overwritten or deleted data file or model cannot be recovered or "
                                              "compared with what was there: tampering leaves no trail.",
                                              f"aws s3api put-bucket-versioning --bucket {b.name} "
                                              "--versioning-configuration Status=Enabled", status=status))
            if not isinstance(lock, Denied):
                enabled = (lock or {}).get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
                m["object_lock"] = enabled
                if not enabled:
                    findings.append(self._gap(b, "object_lock", Severity.LOW,
                                              f"Bucket {b.name} has no object lock",
                                              "Reviewed data and released models can be overwritten by anyone with "
                                              "write access, including a compromised pipeline account.",
                                              "Keep reviewed data and released models in a bucket created with "
                                              "--object-lock-enabled-for-bucket and a default retention."))
            metrics["buckets"][b.name] = m
        return Outcome(findings=findings, metrics=metrics)

    def _gap(self, b: Bucket, setting: str, sev: Severity, title: str, why: str, fix: str, **ev: Any) -> Any:
        return self.finding(key=(setting, b.name), severity=sev, title=title, description=why, remediation=fix,
                            evidence={"bucket": b.name, "setting": setting, "serves": sorted(b.roles), **ev},
                            location=Location(artifact=f"s3://{b.name}"))


def _public_grants(acl: dict[str, Any]) -> list[tuple[str, str]]:
    out = {(PUBLIC[g["Grantee"]["URI"]], g["Permission"]) for g in acl.get("Grants", [])
           if g.get("Grantee", {}).get("URI") in PUBLIC}
    return sorted(out)


def _public_statements(text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    stmts = doc.get("Statement", [])
    stmts = [stmts] if isinstance(stmts, dict) else stmts
    return [(i, st) for i, st in enumerate(stmts)
            if isinstance(st, dict) and st.get("Effect") == "Allow" and not st.get("Condition")
            and _is_public(st.get("Principal"))]


def _is_public(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in _as_list(v) for v in principal.values())
    return False


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else [str(x) for x in v] if isinstance(v, list) else []


def _covers(pattern: str, ops: tuple[str, ...]) -> bool:
    return any(fnmatchcase(op.lower(), pattern.lower()) for op in ops)


def _object_keys(s3: Any, bucket: str, key: str) -> tuple[list[str], bool] | Denied:
    """The spec location's objects: the key itself, or the first objects under it as a prefix."""
    if key and not key.endswith("/"):
        head = get(s3, "head_object", Bucket=bucket, Key=key)
        if isinstance(head, dict):
            return [key], False
    prefix = key.rstrip("/") + "/" if key else ""
    resp = get(s3, "list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=MAX_OBJECTS)
    if isinstance(resp, Denied):
        return resp
    resp = resp or {}
    keys = sorted(o["Key"] for o in resp.get("Contents", []) if not o["Key"].endswith("/"))
    return keys, bool(resp.get("IsTruncated"))
