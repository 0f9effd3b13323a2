"""The pipeline spec, ``mlwarden.yaml``: the one place that knows the file format.

Validated with pydantic; unknown keys are errors so a typo never passes silently. Every
error becomes one :class:`SpecError` line naming the file, the line, the field and the
problem. Relative paths resolve against the spec file's folder; ``s3://`` URIs pass as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SpecError
from .yamlsafe import YamlBoundsError, check_yaml_bounds

SPLITS = ("train", "test", "production", "feedback")
Split = Literal["train", "test", "production", "feedback"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    type: Literal["int", "float", "category", "bool", "str", "datetime"]
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    immutable: bool = False
    group: str | None = Field(default=None, min_length=1)
    """One-hot group this 0/1 column belongs to: exactly one column of a group is 1 in every row."""
    step: float | None = Field(default=None, gt=0)
    """Granularity of a numeric feature (1 for whole numbers, 0.01 for cents); ints default to 1."""

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.values is not None and self.type not in ("category", "str", "int", "bool"):
            raise ValueError(f"'values' lists allowed values and suits category features, not {self.type}")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float", "datetime"):
            raise ValueError(f"'min'/'max' suit numeric features, not {self.type}")
        if self.step is not None and self.type not in ("int", "float"):
            raise ValueError(f"'step' suits int and float features, not {self.type}")
        if self.step is not None and self.type == "int" and self.step != int(self.step):
            raise ValueError(f"'step' of an int feature must be a whole number, not {self.step}")
        if self.group is not None and self.type not in ("int", "bool", "float"):
            raise ValueError(f"'group' marks 0/1 one-hot columns (int or bool), not {self.type}")
        return self


class DataSpec(_Strict):
    train: str | None = None
    test: str | None = None
    production: str | None = None
    feedback: str | None = None
    label: str | None = None
    id: str | None = None
    time: str | None = None
    sensitive: list[str] = Field(default_factory=list)
    quasi_identifiers: list[str] | None = None
    """Columns that together could re-identify a person (zip, birth date…); default: guessed by name."""
    population_size: int | None = Field(default=None, ge=1, le=10**12)
    """People in the population the data was sampled from (k-anonymity's re-identification risk)."""
    prediction: str | None = None
    """Column of the eval splits holding the model's predicted label (when no model artifact is given)."""
    score: str | None = None
    """Column of the eval splits holding the model's score/probability for the favorable label."""

    @model_validator(mode="after")
    def _one_dataset(self) -> DataSpec:
        if not any(getattr(self, s) for s in SPLITS):
            raise ValueError("name at least one dataset: train, test, production or feedback")
        return self

    def splits(self) -> dict[str, str]:
        """Split name → location, for the splits the spec names, in pipeline order."""
        return {s: getattr(self, s) for s in SPLITS if getattr(self, s)}


class FairnessSpec(_Strict):
    favorable: Any = 1
    """The label value that is the good outcome for the person (approved, hired…)."""
    reference: dict[str, Any] = Field(default_factory=dict)
    """Reference group per sensitive attribute (default: its largest group)."""
    min_group_size: int = Field(default=30, ge=1)
    """Groups smaller than this are reported as too small to judge, never dropped."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    seed: int = 0


class AttackSpec(_Strict):
    """Bounds of the model attack suite (``model.*`` checks, ``mlwarden attack``)."""

    seed: int = 0
    queries: int = Field(default=20_000, ge=10, le=10_000_000)
    """Query budget of each attack family against the model (local or endpoint)."""
    targets: int = Field(default=200, ge=1, le=100_000)
    """Rows of the eval split an attack tries to move (a deterministic sample when the split is larger)."""
    time_limit_s: float = Field(default=120.0, gt=0, le=86_400)
    """Wall-clock limit of each attack family; an attack that reaches it reports that it stopped early."""
    against: Literal["artifact", "endpoint"] | None = None
    """Which model the attacks query when the spec names both (default: the artifact)."""


class ModelSpec(_Strict):
    artifact: str | None = None
    endpoint: str | None = None
    allow: list[str] = Field(default_factory=list)
    """Pickle globals ("module.name" or "module.*") to admit beyond the built-in allowlist."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        u = urlparse(v)
        if u.scheme not in ("http", "https", "grpc", "grpcs") or not u.netloc:
            raise ValueError(f"endpoint {v!r} must be an http(s):// or grpc:// URL with a host")
        return v


def _constraint(text: str) -> str:
    """A constraint that parses (the columns it names are checked against the data when it is read)."""
    from .constraints import ConstraintError, parse  # the grammar loads only for specs that use it

    try:
        parse(text)
    except ConstraintError as e:
        raise ValueError(str(e)) from None
    return text


class Spec(_Strict):
    name: str = Field(min_length=1)
    data: DataSpec
    features: dict[str, FeatureSpec] = Field(default_factory=dict)
    fairness: FairnessSpec = Field(default_factory=FairnessSpec)
    model: ModelSpec | None = None
    attacks: AttackSpec = Field(default_factory=AttackSpec)
    constraints: list[Annotated[str, AfterValidator(_constraint)]] = Field(default_factory=list)
    """Relations every real input satisfies (``open_acc <= total_acc``), in :mod:`mlwarden.constraints`' grammar."""
    code: list[str] = Field(default_factory=list)
    infra: list[str] = Field(default_factory=list)
    """Dockerfiles, compose files, Kubernetes/Helm-rendered YAML, platform configs, image tarballs (paths or globs)."""
    manifest: str | None = None
    """Manifest to verify the data and model against (default: mlwarden.manifest.json beside the spec)."""

    base_dir: Path = Field(default=Path("."), exclude=True)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _groups(self) -> Spec:
        groups: dict[str, list[str]] = {}
        for name, f in self.features.items():
            if f.group:
                groups.setdefault(f.group, []).append(name)
        for g, cols in groups.items():
            if len(cols) < 2:
                raise ValueError(f"one-hot group {g!r} has only one column ({cols[0]}); a group needs two or more")
        return self

    def resolve(self, location: str) -> str:
        """An absolute local path, or the URI unchanged for remote storage."""
        if "://" in location:
            return location
        p = Path(location).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    def datasets(self) -> dict[str, str]:
        """Split name → resolved location."""
        return {k: self.resolve(v) for k, v in self.data.splits().items()}

    def artifact(self) -> str | None:
        return self.resolve(self.model.artifact) if self.model and self.model.artifact else None

    def manifest_path(self) -> str:
        return self.resolve(self.manifest or "mlwarden.manifest.json")

    def display(self, location: str) -> str:
        """A location as the report shows it: relative to the spec's folder when inside it."""
        if "://" in location:
            return location
        try:
            return str(Path(location).resolve().relative_to(self.base_dir.resolve()))
        except ValueError:
            return location


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; raise :class:`SpecError` with one precise line."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: no such spec file; write one with `mlwarden init`")
    if path.is_dir():
        raise SpecError(f"{path}: is a folder; give the path of a mlwarden.yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read the spec: {e}") from e
    return parse_spec(text, path)


def parse_spec(text: str, path: Path) -> Spec:
    try:
        check_yaml_bounds(text)
    except YamlBoundsError as e:
        raise SpecError(f"{path}:{e.line}: {e}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}{where}: not valid YAML: {problem}") from e
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a mapping with at least 'name' and 'data'")
    try:
        return Spec.model_validate({**raw, "base_dir": path.resolve().parent, "path": path})
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        field = ".".join(loc) or "(top level)"
        line = _line_of(node, loc)
        where = f":{line}" if line else ""
        msg = _MESSAGES.get(err["type"], err["msg"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (typo?); see `mlwarden init` for the keys a spec takes"
            field = ".".join(loc[:-1]) or "(top level)"
        more = f" (and {len(e.errors()) - 1} more problem(s))" if len(e.errors()) > 1 else ""
        raise SpecError(f"{path}{where}: {field}: {msg}{more}") from e


_MESSAGES = {
    "missing": "required field is missing",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
}


def _line_of(node: yaml.Node | None, loc: tuple[str, ...]) -> int | None:
    """1-based line of the deepest YAML node on ``loc`` that exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


EXAMPLE = """\
# mlwarden.yaml — what mlwarden audits. Every key but `name` and one dataset is optional;
# unknown keys are an error, so typos never pass silently. Paths are relative to this file.
name: loan-approval

data:
  train: data/train.parquet          # a parquet file, a CSV file, or a folder of parquet files; local or s3://
  test: data/test.parquet
  # production: data/prod/           # inference-time data (may lack the label)
  # feedback: data/feedback.parquet  # labelled data that flows back into retraining
  label: approved                    # the target column
  # id: applicant_id                 # entity key: leakage by entity, row-level evidence
  # time: application_date           # event time: temporal leakage, drift windows
  # sensitive: [race, sex]           # protected attributes: fairness and proxy checks
  # quasi_identifiers: [zip, birth_date, sex]   # k-anonymity (default: guessed from column names)
  # population_size: 2500000         # people the data was sampled from (re-identification risk)
  # prediction: predicted            # eval-split column with the model's predictions (instead of model.artifact)
  # score: predicted_proba           # eval-split column with the model's score for the favorable label

# fairness:
#   favorable: 1                     # the label value that is the good outcome
#   reference: {race: white}         # reference group per attribute (default: the largest)
#   min_group_size: 30               # smaller groups are reported as too small to judge
#   confidence: 0.95                 # bootstrap confidence level
#   resamples: 1000

# features:                          # optional constraints: validation, realistic attacks, the guard's schema
#   age: {type: int, min: 18, max: 100, immutable: true}
#   loan_amount: {type: float, min: 0}
#   region: {type: category, values: [north, south, east, west]}
#   term_months: {type: int, min: 6, max: 360, step: 6}           # step: the granularity a real input has
#   home_own: {type: int, group: home}   # one-hot columns of one group: exactly one is 1 in every row
#   home_rent: {type: int, group: home}

# constraints:                       # relations every real input satisfies: data validation, realistic attacks
#   - "open_accounts <= total_accounts"
#   - "installment == amount * rate / 12 / (1 - (1 + rate / 12) ** (-term)) within 0.01"
#   - "grade in {1, 2, 3, 4, 5}"

# model:
#   artifact: models/model.joblib    # scanned first, loaded only through the safe loader
#   endpoint: http://127.0.0.1:8080/v2/models/loan   # Open Inference Protocol v2 (REST or grpc://)
#   allow: [mypkg.features.Scaler]   # pickle globals you trust beyond the built-in allowlist

# attacks:                           # bounds of the model attack suite (model.* checks)
#   seed: 0
#   queries: 20000                   # query budget per attack family
#   targets: 200                     # eval rows each attack tries to move
#   time_limit_s: 120
#   against: endpoint                # attack the live endpoint (as an outsider) instead of the artifact

# code: [src/]                       # training and serving code to scan
# infra: [deploy/]                   # Dockerfiles, compose, Kubernetes/KServe/Ray YAML, platform configs, image tarballs
# manifest: mlwarden.manifest.json   # verify data and model files against it (`mlwarden manifest create`)
"""
