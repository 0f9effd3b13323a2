"""storage.s3.public_access and storage.s3.protection against a real S3-compatible server (moto)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlwarden.audit import _finish, run_audit
from mlwarden.checks.storage import s3 as s3check
from mlwarden.registry import AuditContext, Sources
from mlwarden.spec import load_spec

boto3 = pytest.importorskip("boto3")
from botocore.exceptions import ClientError  # noqa: E402

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def _parquet(n: int = 50) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(n)), "y": [i % 2 for i in range(n)]}), buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def buckets(s3_admin: Any) -> dict[str, str]:
    """A locked-down bucket and a wide-open one, each holding train.parquet (open also prod/)."""
    c = s3_admin
    c.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    c.put_public_access_block(Bucket="locked", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    c.put_bucket_encryption(Bucket="locked", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    c.put_bucket_versioning(Bucket="locked", VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket="locked", Key="train.parquet", Body=_parquet())
    c.put_object(Bucket="locked", Key="models/model.joblib", Body=b"not a model")

    c.create_bucket(Bucket="open")
    owner = c.get_bucket_acl(Bucket="open")["Owner"]
    # moto's canned "public-read-write" grants AllUsers READ only, so the grants are spelled out
    c.put_bucket_acl(Bucket="open", AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"},
        {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "WRITE"},
        {"Grantee": {"Type": "Group", "URI": AUTH_USERS}, "Permission": "READ_ACP"},
    ]})
    c.put_bucket_policy(Bucket="open", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "anyone-rw", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": "arn:aws:s3:::open/*"},
        {"Sid": "anyone-r", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::open/*"},
        {"Sid": "vpc-only", "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::open/*",
         "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
    ]}))
    c.put_object(Bucket="open", Key="train.parquet", Body=_parquet(), ACL="public-read")
    for i in range(3):  # private explicitly: moto copies the bucket ACL onto new objects, AWS doesn't
        c.put_object(Bucket="open", Key=f"prod/part-{i}.parquet", Body=_parquet(20), ACL="private")
    return {"locked": "locked", "open": "open"}


def _spec(tmp_path: Path, text: str) -> Any:
    (tmp_path / "mlwarden.yaml").write_text(text, encoding="utf-8")
    return load_spec(tmp_path / "mlwarden.yaml")


def _run(cls: type, spec: Any):
    check = cls(spec, Sources(datasets={}))
    return _finish(check, AuditContext(spec=spec, sources=check.sources, engine=None), None)  # type: ignore[arg-type]


def _by_title(result) -> dict[str, Any]:
    return {f.title: f for f in result.findings}


OPEN_SPEC = "name: s3\ndata:\n  train: s3://open/train.parquet\n  production: s3://open/prod/\n"
LOCKED_SPEC = "name: s3\ndata:\n  train: s3://locked/train.parquet\nmodel:\n  artifact: s3://locked/models/model.joblib\n"


def test_open_bucket_public_access(buckets, s3_env, tmp_path: Path) -> None:
    result = _run(s3check.S3PublicAccess, _spec(tmp_path, OPEN_SPEC))
    assert result.status == "fail"
    got = {f.title: f.severity.value for f in result.findings}
    assert got == {
        "Bucket open has no public access block": "high",
        "Bucket open's ACL grants WRITE to AllUsers": "critical",
        "Bucket open's ACL grants READ to AllUsers": "high",
        "Bucket open's ACL grants READ_ACP to AuthenticatedUsers": "high",
        "Bucket open's policy allows s3:GetObject, s3:PutObject to everyone": "critical",
        "Bucket open's policy allows s3:GetObject to everyone": "high",
        "1 object(s) of data.train are public through their ACLs": "high",
    }
    obj = _by_title(result)["1 object(s) of data.train are public through their ACLs"]
    assert obj.evidence["grants"] == [{"key": "train.parquet", "grantee": "AllUsers", "permission": "READ"}]
    assert obj.location.artifact == "s3://open/train.parquet"
    m = result.metrics["buckets"]["open"]
    assert m["public_access_block"] == "missing" and m["public_policy_statements"] == 2
    assert m["serves"] == ["data.production", "data.train"]
    assert m["objects"]["data.production"] == {"objects": 3, "truncated": False, "public_grants": 0}


def test_open_bucket_protection(buckets, s3_env, tmp_path: Path) -> None:
    result = _run(s3check.S3Protection, _spec(tmp_path, OPEN_SPEC))
    got = {f.title: f.severity.value for f in result.findings}
    # moto applies no default encryption to new buckets (AWS does since 2023): what the server says is asserted
    assert got == {
        "Bucket open has no default encryption": "medium",
        "Bucket open is not versioned (never enabled)": "medium",
        "Bucket open has no object lock": "low",
    }
    assert result.metrics["buckets"]["open"] == {"serves": ["data.production", "data.train"], "encryption": "none",
                                                 "versioning": "never enabled", "object_lock": False}


def test_locked_bucket_passes(buckets, s3_env, tmp_path: Path) -> None:
    spec = _spec(tmp_path, LOCKED_SPEC)
    for cls in (s3check.S3PublicAccess, s3check.S3Protection):
        result = _run(cls, spec)
        assert result.status == "pass" and result.findings == (), result.findings
    prot = _run(s3check.S3Protection, spec).metrics["buckets"]["locked"]
    assert prot == {"serves": ["data.train", "model.artifact"], "encryption": ["aws:kms"],
                    "versioning": "Enabled", "object_lock": True}


def test_public_grant_neutralised_by_block_is_low(buckets, s3_env, tmp_path: Path) -> None:
    c = boto3.client("s3")
    c.create_bucket(Bucket="half")
    c.put_object(Bucket="half", Key="train.parquet", Body=_parquet(), ACL="public-read")
    c.put_public_access_block(Bucket="half", PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    result = _run(s3check.S3PublicAccess, _spec(tmp_path, "name: s3\ndata:\n  train: s3://half/train.parquet\n"))
    got = {f.title: f.severity.value for f in result.findings}
    assert got == {"Bucket half has a partial public access block (BlockPublicAcls off)": "high",
                   "1 object(s) of data.train are public through their ACLs": "low"}


class _Denying:
    """The real client, except that some calls answer AccessDenied as IAM would."""

    def __init__(self, real: Any, denied: set[str]) -> None:
        self.real, self.denied = real, denied

    def __getattr__(self, op: str) -> Any:
        if op in self.denied:
            def deny(**kw: Any) -> Any:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, op)
            return deny
        return getattr(self.real, op)


def test_access_denied_is_reported_not_passed(buckets, s3_env, tmp_path: Path, monkeypatch) -> None:
    real = s3check.client
    monkeypatch.setattr(s3check, "client", lambda: _Denying(real(), {"get_bucket_policy", "get_bucket_versioning"}))
    spec = _spec(tmp_path, LOCKED_SPEC)
    pub = _run(s3check.S3PublicAccess, spec)
    prot = _run(s3check.S3Protection, spec)
    assert [(f.title, f.severity.value) for f in pub.findings] == [
        ("Could not read policy of bucket locked (AccessDenied)", "info")]
    assert [(f.title, f.severity.value) for f in prot.findings] == [
        ("Could not read versioning of bucket locked (AccessDenied)", "info")]
    assert pub.status == "pass"  # info only: nothing known to be wrong, but nothing assumed right


def test_unreachable_endpoint_is_an_error(s3_env, closed_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed_url)
    result = _run(s3check.S3Protection, _spec(tmp_path, OPEN_SPEC))
    assert result.status == "error"
    assert result.message.startswith("S3AuditError: cannot reach S3") and "AWS_ENDPOINT_URL" in result.message


def test_missing_credentials_is_an_error(s3_env, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = _run(s3check.S3PublicAccess, _spec(tmp_path, OPEN_SPEC))
    assert result.status == "error" and "no AWS credentials" in result.message


def test_missing_bucket_is_an_error(buckets, s3_env, tmp_path: Path) -> None:
    result = _run(s3check.S3Protection, _spec(tmp_path, "name: s3\ndata:\n  train: s3://nowhere/t.parquet\n"))
    assert result.status == "error" and "bucket 'nowhere' does not exist" in result.message


def test_skips(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "t.parquet").write_bytes(_parquet())
    local = _run(s3check.S3PublicAccess, _spec(tmp_path, "name: l\ndata:\n  train: t.parquet\n"))
    assert (local.status, local.message) == ("skipped", "no s3:// location in the spec")
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if the s3 extra were not installed
    result = _run(s3check.S3Protection, _spec(tmp_path, OPEN_SPEC))
    assert (result.status, result.message) == ("skipped", "install mlwarden[s3] to audit S3 buckets (needs boto3)")


def test_run_audit_end_to_end_over_s3(buckets, s3_env, tmp_path: Path) -> None:
    """The whole audit on an s3 spec: pyarrow's S3 filesystem reads the parquet through the endpoint."""
    report = run_audit(_spec(tmp_path, OPEN_SPEC))
    results = {r.id: r for r in report.checks}
    assert results["storage.s3.public_access"].status == "fail"
    assert results["storage.s3.protection"].status == "fail"
    assert {r.id: r.message for r in report.checks if r.status == "error"} == {}
    assert results["storage.local.data"].status == "skipped"
    worst = max(f.severity.rank for f in report.findings if f.check == "storage.s3.public_access")
    assert worst == 4
    # rows counted by a fold check: the batches really streamed through pyarrow's S3 filesystem
    assert results["data.integrity.fingerprint"].metrics["rows"] == {"train": 50, "production": 60}
