"""Hostile and broken image archives: every way a walk can be cut short or lied to is a precise
finding, and whatever stops the walk is HIGH "not fully scanned" (fail closed)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
from image_fixtures import (
    Archive,
    M,
    blob,
    compress,
    config_for,
    docker_save_legacy,
    evil_pickle,
    layer_tar,
    oci,
    sha,
)

from mlwarden.findings import Severity
from mlwarden.infra.base import InfraError
from mlwarden.infra.image import ImageLimits, looks_like_image, scan_image

SIMPLE = [M("app/readme.txt", b"hello\n")]


def rules(issues, rule):
    return [i for i in issues if i.rule == rule]


def incomplete(issues):
    return [i for i in issues if i.rule == "infra.image.incomplete" and i.severity == Severity.HIGH]


def simple_oci(members=SIMPLE, how="gzip"):
    layers = [layer_tar(members)]
    return oci(layers, config_for(layers, user="1000"), how=how), layers


def layer_key(arch: Archive) -> str:
    index = json.loads(arch.files["index.json"])
    manifest = json.loads(arch.files[blob(index["manifests"][0]["digest"])])
    return blob(manifest["layers"][0]["digest"])


def test_swapped_layer_blob_is_a_digest_mismatch(tmp_path):
    arch, _ = simple_oci()
    arch.files[layer_key(arch)] = compress(layer_tar([M("app/readme.txt", b"swapped\n")]), "gzip")
    found = rules(scan_image(arch.write_tar(tmp_path / "i.tar")), "infra.image.digest_mismatch")
    assert found and all(i.severity == Severity.HIGH for i in found)
    what = " ".join(i.message for i in found)
    assert "layer blob" in what and "diff_ids" in what  # blob digest and uncompressed digest both differ
    assert all(i.evidence["expected"] != i.evidence["actual"] for i in found)


def test_legacy_diff_id_mismatch(tmp_path):
    layers = [layer_tar(SIMPLE)]
    config = config_for([layer_tar([M("other", b"x")])], user="1000")  # diff_id of a different layer
    found = rules(scan_image(docker_save_legacy(layers, config).write_tar(tmp_path / "i.tar")),
                  "infra.image.digest_mismatch")
    assert len(found) == 1 and "rootfs.diff_ids" in found[0].message


def test_altered_config_is_a_digest_mismatch(tmp_path):
    arch, _ = simple_oci()
    manifest = json.loads(arch.files[blob(json.loads(arch.files["index.json"])["manifests"][0]["digest"])])
    key = blob(manifest["config"]["digest"])
    cfg = json.loads(arch.files[key])
    cfg["config"]["User"] = "root"
    arch.files[key] = json.dumps(cfg).encode()
    found = rules(scan_image(arch.write_tar(tmp_path / "i.tar")), "infra.image.digest_mismatch")
    assert found and found[0].path.endswith(key)


def test_missing_layer_blob_fails_closed(tmp_path):
    arch, _ = simple_oci()
    del arch.files[layer_key(arch)]
    found = incomplete(scan_image(arch.write_tar(tmp_path / "i.tar")))
    assert found and "missing" in found[0].message and "not fully scanned" in found[0].message


def test_traversal_absolute_and_link_escapes_in_a_layer(tmp_path):
    arch, _ = simple_oci([
        M("../../etc/cron.d/evil", b"* * * * * root sh -c id\n"), M("/abs/file", b"x"),
        M("app/shadow", type=tarfile.LNKTYPE, link="../../../etc/shadow"),
        M("app/up", type=tarfile.SYMTYPE, link="../../../../etc"),
        M("usr/bin/python", type=tarfile.SYMTYPE, link="/usr/bin/python3.11"),  # normal in images
    ])
    issues = scan_image(arch.write_tar(tmp_path / "i.tar"))
    traversal = rules(issues, "infra.image.layer.path_traversal")
    assert {i.evidence["member"] for i in traversal} == {"../../etc/cron.d/evil", "/abs/file"}
    assert all(i.severity == Severity.HIGH for i in traversal)
    links = {i.path.rsplit("/", 2)[-1]: i.severity for i in rules(issues, "infra.image.layer.link_escape")}
    assert links == {"shadow": Severity.HIGH, "up": Severity.MEDIUM}


def test_outer_archive_traversal_member(tmp_path):
    arch, _ = simple_oci()
    arch.files["../../escape.sh"] = b"#!/bin/sh\n"
    found = rules(scan_image(arch.write_tar(tmp_path / "i.tar")), "infra.image.archive.path_traversal")
    assert found and found[0].severity == Severity.HIGH


def test_hardlink_to_a_malicious_pickle_is_scanned_under_its_own_name(tmp_path):
    arch, _ = simple_oci([M("app/model.pkl", evil_pickle()),
                          M("app/alias.bin", type=tarfile.LNKTYPE, link="app/model.pkl")])
    issues = scan_image(arch.write_tar(tmp_path / "i.tar"))
    crit = {i.path.rsplit("/", 1)[-1] for i in issues if i.severity == Severity.CRITICAL}
    assert crit == {"model.pkl", "alias.bin"}


def test_pickle_without_a_model_suffix_is_found_by_content(tmp_path):
    arch, _ = simple_oci([M("opt/weights", evil_pickle())])
    assert [i for i in scan_image(arch.write_tar(tmp_path / "i.tar")) if i.severity == Severity.CRITICAL]


def giant_pax_layer() -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 1 << 32  # 4 GiB of "pax records" that tarfile would read into memory whole
    return info.tobuf(format=tarfile.USTAR_FORMAT) + b"x" * 1024 + bytes(1024)


def test_giant_extended_header_is_refused_not_read(tmp_path):
    layers = [giant_pax_layer()]
    path = docker_save_legacy(layers, config_for(layers, user="1")).write_tar(tmp_path / "i.tar")
    found = incomplete(scan_image(path))
    assert found and "extended tar header claims 4294967296 bytes" in found[0].message


def test_compression_bomb_stops_the_walk(tmp_path):
    big = layer_tar([M("var/zeros.img", bytes(8 << 20))])
    arch = oci([big], config_for([big], user="1"), how="gzip")
    limits = ImageLimits(bomb_min_bytes=1 << 20, max_ratio=100)
    found = incomplete(scan_image(arch.write_tar(tmp_path / "i.tar"), limits=limits))
    assert found and "compression bomb" in found[0].message
    summary = rules(scan_image(tmp_path / "i.tar", limits=limits), "infra.image.summary")[0]
    assert summary.evidence["complete"] is False


def test_same_layer_passes_with_default_limits(tmp_path):
    big = layer_tar([M("var/zeros.img", bytes(8 << 20))])
    arch = oci([big], config_for([big], user="1"), how="gzip")
    assert not incomplete(scan_image(arch.write_tar(tmp_path / "i.tar")))


def test_corrupt_header_mid_layer_is_not_a_quiet_end(tmp_path):
    good = layer_tar([M("app/a.txt", b"a" * 10), M("app/b.pkl", evil_pickle())])
    broken = good[:1024] + b"\xff" * 512 + good[1024:]  # garbage where the second header belongs
    layers = [broken]
    path = docker_save_legacy(layers, config_for(layers, user="1")).write_tar(tmp_path / "i.tar")
    found = incomplete(scan_image(path))
    assert found and "data follows" in found[0].message


def test_truncated_gzip_layer(tmp_path):
    arch, _ = simple_oci([M("app/data.txt", bytes(range(256)) * 400)])
    key = layer_key(arch)
    arch.files[key] = arch.files[key][: len(arch.files[key]) // 2]
    issues = scan_image(arch.write_tar(tmp_path / "i.tar"))
    assert incomplete(issues) and rules(issues, "infra.image.digest_mismatch")


def test_member_limit(tmp_path):
    arch, _ = simple_oci([M(f"app/f{n}.txt", b"x") for n in range(10)])
    found = incomplete(scan_image(arch.write_tar(tmp_path / "i.tar"), limits=ImageLimits(max_members=4)))
    assert found and "more than 4 members" in found[0].message


def multiarch(tmp_path, platforms):
    """An OCI layout whose index points to a nested index of per-platform manifests + an attestation."""
    arch = Archive()
    descs = []
    for os_arch in platforms + ["unknown/unknown"]:
        tar = layer_tar([M("etc/arch", os_arch.encode())])
        data = gzip.compress(tar, mtime=0)
        cfg = json.dumps(config_for([tar], user="1")).encode()
        arch.files[blob(sha(data))], arch.files[blob(sha(cfg))] = data, cfg
        manifest = json.dumps({"schemaVersion": 2, "config": {"digest": sha(cfg), "size": len(cfg)},
                               "layers": [{"digest": sha(data), "size": len(data)}]}).encode()
        arch.files[blob(sha(manifest))] = manifest
        os_, cpu = os_arch.split("/")
        descs.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
                      "size": len(manifest), "platform": {"os": os_, "architecture": cpu}})
    nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": descs}).encode()
    arch.files[blob(sha(nested))] = nested
    arch.files["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
    arch.files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(nested), "size": len(nested)}]}).encode()
    return arch.write_tar(tmp_path / "multi.tar")


def test_multiarch_index_picks_linux_amd64(tmp_path):
    issues = scan_image(multiarch(tmp_path, ["linux/arm64", "linux/amd64"]))
    assert [i.evidence["image"] for i in rules(issues, "infra.image.summary")] == ["linux/amd64"]


def test_multiarch_without_amd64_scans_each_platform(tmp_path):
    issues = scan_image(multiarch(tmp_path, ["linux/arm64", "linux/s390x"]))
    assert sorted(i.evidence["image"] for i in rules(issues, "infra.image.summary")) == ["linux/arm64", "linux/s390x"]


def test_looks_like_image_rejects_plain_archives(tmp_path):
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        info = tarfile.TarInfo("data/manifest.json.bak")
        tar.addfile(info, io.BytesIO(b""))
    assert not looks_like_image(plain, plain.read_bytes()[:512])
    text = tmp_path / "notes.txt"
    text.write_text("manifest.json\n")
    assert not looks_like_image(text, text.read_bytes())


def test_not_an_image_and_missing_file(tmp_path):
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.addfile(tarfile.TarInfo("x"), io.BytesIO(b""))
    assert incomplete(scan_image(plain))
    with pytest.raises(InfraError, match="cannot read the image archive"):
        scan_image(tmp_path / "absent.tar")


def test_bad_manifest_json(tmp_path):
    arch, _ = simple_oci()
    arch.files["manifest.json"] = b"{not json"
    found = incomplete(scan_image(arch.write_tar(tmp_path / "i.tar")))
    assert found and "not valid JSON" in found[0].message


def test_multi_member_gzip_layer_is_read_to_the_end(tmp_path):
    tar = layer_tar([M("app/a.txt", b"a" * 5000), M("app/late.pkl", evil_pickle())])
    layers = [tar]
    data = gzip.compress(tar[:3000], mtime=0) + gzip.compress(tar[3000:], mtime=0)  # as pigz writes
    arch = oci(layers, config_for(layers, user="1"), how=None)
    key = layer_key(arch)
    del arch.files[key]
    arch.files[blob(sha(data))] = data
    for name, body in list(arch.files.items()):  # point the manifest at the two-member blob
        if name.startswith("blobs/") and b'"schemaVersion"' in body:
            manifest = json.loads(body)
            manifest["layers"][0].update(digest=sha(data), size=len(data))
            del arch.files[name]
            new = json.dumps(manifest).encode()
            arch.files[blob(sha(new))] = new
            arch.files["index.json"] = json.dumps({"manifests": [{"digest": sha(new), "size": len(new)}]}).encode()
    issues = scan_image(arch.write_tar(tmp_path / "i.tar"))
    assert not incomplete(issues) and not rules(issues, "infra.image.digest_mismatch")
    assert [i for i in issues if i.severity == Severity.CRITICAL and i.path.endswith("app/late.pkl")]


def test_deleted_env_file_still_leaks_its_token(tmp_path):
    from image_fixtures import HF_TOKEN

    layers = [layer_tar([M("app/.env", f"HF_TOKEN={HF_TOKEN}\n".encode())]), layer_tar([M("app/.wh..env")])]
    issues = scan_image(docker_save_legacy(layers, config_for(layers, user="1")).write_tar(tmp_path / "i.tar"))
    leaked = rules(issues, "infra.image.secret")
    assert len(leaked) == 1 and leaked[0].severity == Severity.HIGH and leaked[0].evidence["buried"] is True
    assert "still in the image layers" in leaked[0].message and HF_TOKEN not in repr(issues)


def test_model_replaced_in_a_later_layer_is_buried(tmp_path):
    from image_fixtures import sklearn_joblib

    layers = [layer_tar([M("app/model.pkl", evil_pickle())]), layer_tar([M("app/model.pkl", sklearn_joblib())])]
    issues = scan_image(docker_save_legacy(layers, config_for(layers, user="1")).write_tar(tmp_path / "i.tar"))
    assert not [i for i in issues if i.rule == "infra.image.artifact" and i.severity.rank >= Severity.HIGH.rank]
    buried = rules(issues, "infra.image.buried_model")
    assert len(buried) == 1 and buried[0].evidence["how"] == "replaced by a later layer"
