"""The items of the ethics checklist: Deon's five sections, mapped to mlwarden's checks.

Ids and titles follow Deon (https://deon.drivendata.org, MIT licence) so teams that use it
recognise them; the questions are paraphrased. ``checks`` are glob patterns over check
ids: the checks whose findings and metrics bear on the item. An item without checks is
one only a person can answer; ``needs`` says what would let an audit speak to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Item:
    id: str
    title: str
    question: str
    checks: tuple[str, ...] = ()
    needs: str = "a person: no automated check can answer this"
    coverage: bool = False
    """The item asks whether something is *possible* (e.g. group membership is recorded): a check
    that ran is the evidence, and its findings belong to other items."""


SECTIONS: dict[str, str] = {
    "A": "Data collection",
    "B": "Data storage",
    "C": "Analysis",
    "D": "Modeling",
    "E": "Deployment",
}

_FAIR_DATA = ("fairness.representation", "fairness.base_rates")
_FAIR_MODEL = ("fairness.model_disparity", "fairness.intersectional", "fairness.counterfactual")

ITEMS: tuple[Item, ...] = (
    Item(id="A.1", title="Informed consent",
         question="Did the people whose data this is agree to its use for this purpose, knowing what it is?"),
    Item(id="A.2", title="Collection bias",
         question="Could the way the data was gathered leave out or distort some groups, and how was that "
                  "checked?", checks=_FAIR_DATA, needs="data.sensitive in the spec"),
    Item(id="A.3", title="Limit PII exposure",
         question="Is every piece of personal information in the data needed, and could it be removed, masked "
                  "or aggregated?", checks=("data.privacy.*",), needs="the data.privacy checks"),
    Item(id="A.4", title="Downstream bias mitigation",
         question="Is group membership recorded (or obtainable) so that outcomes can be tested for bias later?",
         checks=("fairness.representation",), needs="data.sensitive in the spec", coverage=True),
    Item(id="B.1", title="Data security",
         question="Who can read and change the data and the model, and would a change be noticed?",
         checks=("data.integrity.*", "storage.*", "artifact.*"),
         needs="data and model locations in the spec"),
    Item(id="B.2", title="Right to be forgotten",
         question="Can a person's records be found and removed from the data — and from models trained on it — "
                  "when they ask?"),
    Item(id="B.3", title="Data retention plan",
         question="Is there a schedule for deleting the data once it is no longer needed?"),
    Item(id="C.1", title="Missing perspectives",
         question="Have people from the affected groups, or who know the domain, reviewed the framing and the "
                  "groups the data barely covers?", checks=("fairness.representation",),
         needs="data.sensitive in the spec"),
    Item(id="C.2", title="Dataset bias",
         question="Which biases in the data (representation, labels, missing values) could carry into the "
                  "results, and what was done about them?", checks=(*_FAIR_DATA, "fairness.proxies"),
         needs="data.sensitive and data.label in the spec"),
    Item(id="C.3", title="Honest representation",
         question="Do the reported metrics and charts show the data honestly — measured on data the model never "
                  "saw, without inflated scores?", checks=("data.leakage.*",),
         needs="train and test (or production) data in the spec"),
    Item(id="C.4", title="Privacy in analysis",
         question="Is personal information kept out of notebooks, logs and reports produced in the analysis?",
         checks=("data.privacy.*", "model.privacy.*"), needs="the privacy checks"),
    Item(id="C.5", title="Auditability",
         question="Could someone reproduce this analysis and trace a problem back to the data and code that "
                  "caused it?", checks=("data.integrity.*",), needs="a manifest (`mlwarden manifest create`)"),
    Item(id="D.1", title="Proxy discrimination",
         question="Does the model rely on features that stand in for a protected attribute, and is any such use "
                  "justified?", checks=("fairness.proxies", "fairness.counterfactual"),
         needs="data.sensitive in the spec (and model.artifact for the counterfactual probe)"),
    Item(id="D.2", title="Fairness across groups",
         question="Do the model's errors and decisions differ across groups, and which differences are "
                  "acceptable here?", checks=_FAIR_MODEL,
         needs="data.sensitive, test data with labels, and model.artifact or data.prediction"),
    Item(id="D.3", title="Metric selection",
         question="Which fairness and performance metrics matter for this decision, and what does optimizing "
                  "the chosen one cost the others?", checks=("fairness.model_disparity",),
         needs="test data with labels and predictions"),
    Item(id="D.4", title="Explainability",
         question="Can the model's decisions be explained in terms the people affected would understand?"),
    Item(id="D.5", title="Communicate bias",
         question="Have the known limitations and biases been told to the people who use and are affected by "
                  "the model?", checks=("fairness.*",), needs="data.sensitive in the spec"),
    Item(id="E.1", title="Monitoring and evaluation",
         question="Is the model watched in production for shifts in inputs, performance and fairness, and who "
                  "acts on an alert?", checks=("data.drift.*", "endpoint.*"),
         needs="production data or model.endpoint in the spec"),
    Item(id="E.2", title="Redress",
         question="Can a person harmed by a decision find out, contest it and get it corrected?"),
    Item(id="E.3", title="Roll back",
         question="Can the model be switched off or rolled back to a known-good version quickly?",
         checks=("data.integrity.fingerprint",), needs="a manifest of the known-good data and model"),
    Item(id="E.4", title="Concept drift",
         question="Is there a way to tell when the world has changed enough that the model needs retraining — "
                  "and that the retraining data can be trusted?",
         checks=("data.drift.*", "data.poisoning.*", "model.poisoning.*"),
         needs="production or feedback data in the spec"),
    Item(id="E.5", title="Unintended use",
         question="What could users do with the model that it was not meant for (evade it, copy it, learn about "
                  "the people in its training data), and what prevents it?",
         checks=("endpoint.*", "model.evasion.*", "model.extraction.*", "model.privacy.*"),
         needs="model.endpoint or model.artifact in the spec"),
)
