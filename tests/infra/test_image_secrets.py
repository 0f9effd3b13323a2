"""The file-content secret detectors used on images: detect-secrets' token plugins in-process,
the ML tokens it lacks, redaction, and placeholders left alone."""

from __future__ import annotations

import pytest

from mlwarden.infra.image_secrets import find_secrets, redact

HF = "hf_" + "QmRkTzXw9vLpA3sEe7YnJc2UgHbKd5MtRq"
NGC = "nvapi-" + "Zq8Xw2Lk9Pm4Rt7Vb1Nc6Hy3Js5Df0GaTe8Wu2Qi4Ko7Mb9Xr1Lz3Cv5Bn6Yh8"
WANDB = "3f9a1c0be47d25a86f01c9e3b7d4a2f58c6e0b19"
OPENAI = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7CD0EF3GH6IJ9KL2MN"
AWS_ID = "AKIA" + "Q3V7XK2LMN4PRT6W"
AWS_SECRET = "wJa1rXUtnF3MI/K7MDENG/bPxRfiCY8Zq2Lk9Pm4"
GITHUB = "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"


@pytest.mark.parametrize(("line", "kind", "secret"), [
    (f"HF_TOKEN={HF}", "Hugging Face token", HF),
    (f"export NGC_API_KEY={NGC}", "NVIDIA NGC API key", NGC),
    (f"WANDB_API_KEY={WANDB}", "Weights & Biases API key", WANDB),
    (f"wandb login {WANDB}", "Weights & Biases API key", WANDB),
    (f"OPENAI_API_KEY={OPENAI}", "OpenAI project key", OPENAI),
    (f"aws_access_key_id = {AWS_ID}", "AWS Access Key", AWS_ID),
    (f"aws_secret_access_key = {AWS_SECRET}", "AWS Secret Access Key", AWS_SECRET),  # no quotes: ours
    (f"token: {GITHUB}", "GitHub Token", GITHUB),  # detect-secrets' plugin, whole token not its prefix
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "Private Key", None),
])
def test_detects_and_redacts(line, kind, secret):
    hits = find_secrets(f"# config\n{line}\n")
    assert [(h.type, h.line) for h in hits] == [(kind, 2)]
    if secret:
        assert hits[0].redacted == f"{secret[:4]}…({len(secret)} chars)" and hits[0].length == len(secret)
        assert secret not in repr(hits)


@pytest.mark.parametrize("line", [
    "HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "HF_TOKEN=hf_YOUR_TOKEN_GOES_HERE_0000000000000",
    f"checksum={WANDB}",  # 40 hex without a W&B name nearby is a hash, not a key
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
    "sha256:" + "ab" * 32,
])
def test_placeholders_and_hashes_are_not_secrets(line):
    assert find_secrets(line) == []


def test_one_secret_reported_once_even_when_two_detectors_match():
    hits = find_secrets(f"key = \"{AWS_ID}\"")
    assert len(hits) == 1


def test_hit_cap_and_long_lines():
    text = "\n".join(f"HF_TOKEN={HF[:-2]}{n:02d}" for n in range(80))
    assert len(find_secrets(text, max_hits=10)) == 10
    assert find_secrets("x" * 10_000 + HF) == []  # past the per-line cap: minified blobs are cut


def test_redact_short_and_long():
    assert redact("abcdefgh") == "abcd…(8 chars)"
