"""The taxonomies findings are mapped to: OWASP ML Top 10, MITRE ATLAS, NIST AI RMF.

Checks cite references by id (``OWASP-ML02``, ``AML.T0020``, ``NIST-MEASURE``); this table
gives each a title and a link so reports can show them. A check citing an unknown id is a
bug, caught by the contract test over the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

_OWASP = "https://owasp.org/www-project-machine-learning-security-top-10/docs/"
_ATLAS = "https://atlas.mitre.org/techniques/"
_ATLAS_M = "https://atlas.mitre.org/mitigations/"
_NIST = "https://airc.nist.gov/AI_RMF_Knowledge_Base/AI_RMF/Core_And_Profiles/5-sec-core"


@dataclass(frozen=True)
class Reference:
    id: str
    title: str
    url: str
    framework: str


def _owasp(n: int, title: str, slug: str) -> Reference:
    return Reference(f"OWASP-ML{n:02d}", f"ML{n:02d}:2023 {title}", f"{_OWASP}ML{n:02d}_2023-{slug}", "OWASP ML Top 10")


def _atlas(tid: str, title: str) -> Reference:
    return Reference(tid, title, _ATLAS + tid, "MITRE ATLAS")


def _atlas_m(mid: str, title: str) -> Reference:
    return Reference(mid, title, _ATLAS_M + mid, "MITRE ATLAS")


def _nist(fn: str, title: str) -> Reference:
    return Reference(f"NIST-{fn.upper()}", f"NIST AI RMF {fn.capitalize()}: {title}", _NIST, "NIST AI RMF")


REFERENCES: dict[str, Reference] = {
    r.id: r
    for r in (
        _owasp(1, "Input Manipulation Attack", "Input_Manipulation_Attack"),
        _owasp(2, "Data Poisoning Attack", "Data_Poisoning_Attack"),
        _owasp(3, "Model Inversion Attack", "Model_Inversion_Attack"),
        _owasp(4, "Membership Inference Attack", "Membership_Inference_Attack"),
        _owasp(5, "Model Theft", "Model_Theft"),
        _owasp(6, "AI Supply Chain Attacks", "AI_Supply_Chain_Attacks"),
        _owasp(7, "Transfer Learning Attack", "Transfer_Learning_Attack"),
        _owasp(8, "Model Skewing", "Model_Skewing"),
        _owasp(9, "Output Integrity Attack", "Output_Integrity_Attack"),
        _owasp(10, "Model Poisoning", "Model_Poisoning"),
        _atlas("AML.T0007", "Discover AI Artifacts"),
        _atlas("AML.T0010", "AI Supply Chain Compromise"),
        _atlas("AML.T0010.001", "AI Supply Chain Compromise: AI Software"),
        _atlas("AML.T0010.002", "AI Supply Chain Compromise: Data"),
        _atlas("AML.T0010.003", "AI Supply Chain Compromise: Model"),
        _atlas("AML.T0011.000", "User Execution: Unsafe AI Artifacts"),
        _atlas("AML.T0015", "Evade AI Model"),
        _atlas("AML.T0018", "Manipulate AI Model"),
        _atlas("AML.T0018.000", "Manipulate AI Model: Poison AI Model"),
        _atlas("AML.T0018.002", "Manipulate AI Model: Embed Malware"),
        _atlas("AML.T0019", "Publish Poisoned Datasets"),
        _atlas("AML.T0020", "Poison Training Data"),
        _atlas("AML.T0024", "Exfiltration via AI Inference API"),
        _atlas("AML.T0024.000", "Exfiltration via AI Inference API: Infer Training Data Membership"),
        _atlas("AML.T0024.001", "Exfiltration via AI Inference API: Invert AI Model"),
        _atlas("AML.T0024.002", "Exfiltration via AI Inference API: Extract AI Model"),
        _atlas("AML.T0029", "Denial of AI Service"),
        _atlas("AML.T0031", "Erode AI Model Integrity"),
        _atlas("AML.T0034", "Cost Harvesting"),
        _atlas("AML.T0035", "AI Artifact Collection"),
        _atlas("AML.T0040", "AI Model Inference API Access"),
        _atlas("AML.T0043", "Craft Adversarial Data"),
        _atlas("AML.T0044", "Full AI Model Access"),
        _atlas("AML.T0049", "Exploit Public-Facing Application"),
        _atlas("AML.T0055", "Unsecured Credentials"),
        _atlas("AML.T0058", "Publish Poisoned Models"),
        _atlas("AML.T0059", "Erode Dataset Integrity"),
        _atlas("AML.T0076", "Corrupt AI Model"),
        _atlas_m("AML.M0007", "Sanitize Training Data"),
        _atlas_m("AML.M0013", "Code Signing"),
        _atlas_m("AML.M0014", "Verify AI Artifacts"),
        _atlas_m("AML.M0023", "AI Bill of Materials"),
        _nist("govern", "policies, roles and accountability for AI risk"),
        _nist("map", "context is set and risks are identified"),
        _nist("measure", "identified risks are tested, benchmarked and monitored"),
        _nist("manage", "risks are prioritised, treated and tracked"),
    )
}


def lookup(ref_id: str) -> Reference:
    """The reference for ``ref_id``; unknown ids get a bare entry so reports never break."""
    return REFERENCES.get(ref_id) or Reference(ref_id, ref_id, "", "other")
