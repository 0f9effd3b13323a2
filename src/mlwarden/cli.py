"""The command line: a thin Typer app that parses, calls the library and maps errors to exits.

Exit codes (every command): 0 — nothing at or above ``--fail-on``; 1 — findings at or
above it (or a manifest mismatch); 2 — bad input or usage, one line on stderr; 3 — an
internal error, or a check that errored when nothing else failed the run.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import MlwardenError

app = typer.Typer(
    name="mlwarden",
    help="Pen-test and guard machine-learning pipelines. Start with `mlwarden demo` or `mlwarden init`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
manifest_app = typer.Typer(help="Record and verify what the pipeline's data and model files are.",
                           no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")

# paths in these messages may come from the user or a scanned tree: never parse them as markup
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)

SpecArg = Annotated[Path, typer.Argument(help="Pipeline spec.", show_default=True)]
FailOn = Annotated[str, typer.Option("--fail-on", help="Exit 1 when a finding is at or above this severity "
                                     "(critical, high, medium, low, info, or none).")]


def _fail_on(text: str):
    from .findings import Severity

    if text.strip().lower() in ("none", "never"):
        return None
    try:
        return Severity.parse(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--fail-on") from None


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command()
def audit(
    spec: SpecArg = Path("mlwarden.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the reports.")] = Path("mlwarden-report"),
    format: Annotated[str, typer.Option("--format", "-f", help="Comma-separated: html,json,sarif,junit.")] = "html,json,sarif",
    engine: Annotated[str, typer.Option(help="local (streaming, all cores) or dask.")] = "local",
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address, e.g. tcp://10.0.0.5:8786; "
                                                     "without it --engine dask starts a LocalCluster.")] = None,
    only: Annotated[Optional[list[str]], typer.Option(help="Run only checks matching this glob (repeatable).")] = None,
    skip: Annotated[Optional[list[str]], typer.Option(help="Skip checks matching this glob (repeatable).")] = None,
    fail_on: FailOn = "high",
) -> None:
    """Audit the pipeline a spec describes and write the reports.

    Example: mlwarden audit mlwarden.yaml --out report/ --format html,json,sarif --fail-on high
    """
    from .report import parse_formats

    threshold = _fail_on(fail_on)
    try:
        formats = parse_formats(format)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--format") from None
    from .audit import run_audit
    from .spec import load_spec

    report = run_audit(load_spec(spec), engine=engine, scheduler=scheduler, only=_split(only), skip=_split(skip))
    _write_reports(report, out, formats)
    raise typer.Exit(_exit_code(report, threshold))


FAMILIES = {"evasion": ["model.evasion.*"], "poisoning": ["model.poisoning.*"],
            "membership": ["model.privacy.*"], "extraction": ["model.extraction.*"]}


@app.command()
def attack(
    spec: SpecArg = Path("mlwarden.yaml"),
    family: Annotated[list[str], typer.Option("--family", help="evasion, poisoning, membership or extraction "
                                              "(repeatable).")] = ["evasion"],  # noqa: B006 — typer reads it
    against: Annotated[Optional[str], typer.Option(help="artifact or endpoint: which model to attack when the "
                                                   "spec names both (default: attacks.against, else the artifact).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the reports.")] = Path("mlwarden-report"),
    format: Annotated[str, typer.Option("--format", "-f", help="Comma-separated: html,json,sarif,junit.")] = "html,json,sarif",
    engine: Annotated[str, typer.Option(help="local (all cores) or dask.")] = "local",
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address.")] = None,
    fail_on: FailOn = "high",
) -> None:
    """Run one family of model attacks (the model.* checks) alone and write the reports.

    Example: mlwarden attack mlwarden.yaml --family evasion --family extraction --against endpoint
    """
    from .report import parse_formats

    threshold = _fail_on(fail_on)
    unknown = [f for f in family if f not in FAMILIES]
    if unknown:
        raise typer.BadParameter(f"unknown family {unknown[0]!r}; use any of: {', '.join(FAMILIES)}",
                                 param_hint="--family")
    if against not in (None, "artifact", "endpoint"):
        raise typer.BadParameter(f"{against!r}: use artifact or endpoint", param_hint="--against")
    try:
        formats = parse_formats(format)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--format") from None
    from .audit import run_audit
    from .spec import load_spec

    loaded = load_spec(spec)
    if against:
        model = loaded.model
        if model is None or not getattr(model, against):
            raise MlwardenError(f"{spec}: --against {against} needs model.{against} in the spec")
        loaded = loaded.model_copy(update={"attacks": loaded.attacks.model_copy(update={"against": against})})
    globs = [g for f in family for g in FAMILIES[f]]
    report = run_audit(loaded, engine=engine, scheduler=scheduler, only=globs)
    _write_reports(report, out, formats)
    raise typer.Exit(_exit_code(report, threshold))


@app.command()
def probe(
    url: Annotated[str, typer.Argument(help="http(s)://host:port/v2/models/NAME or grpc(s)://host:port/NAME")],
    key: Annotated[Optional[str], typer.Option(help="API key (or set MLWARDEN_ENDPOINT_KEY).")] = None,
    max_requests: Annotated[int, typer.Option(help="Request budget (>= 20).")] = 200,
    rate: Annotated[float, typer.Option(help="Requests per second, at most.")] = 20.0,
    format: Annotated[str, typer.Option("--format", "-f", help="text, json or sarif.")] = "text",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the report here.")] = None,
    fail_on: FailOn = "high",
    ca: Annotated[Optional[Path], typer.Option(help="Extra CA bundle (PEM) to trust.")] = None,
    example: Annotated[Optional[Path], typer.Option(help="A valid OIP v2 REST inference body (JSON).")] = None,
) -> None:
    """Pen-test a live OIP v2 endpoint (REST or gRPC) with bounded, polite traffic.

    Example: mlwarden probe http://127.0.0.1:8080/v2/models/loan --format sarif --out probe.sarif
    """
    from .cli_probe import probe_command

    raise typer.Exit(probe_command(url, key=key, max_requests=max_requests, rate=rate, format=format, out=out,
                                   fail_on=fail_on, ca=ca, example=example))


guard_app = typer.Typer(help="The gateway in front of a model: auth, quotas, schema, output hardening, attack "
                         "detection, feedback quarantine and a tamper-evident audit log.", invoke_without_command=True)
keys_app = typer.Typer(help="API keys of the guard.", no_args_is_help=True)
guard_app.add_typer(keys_app, name="keys")
app.add_typer(guard_app, name="guard")


@guard_app.callback()
def guard(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Option("--spec", help="Pipeline spec: model, features and constraints.")] = Path("mlwarden.yaml"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="OIP v2 REST port.")] = 8080,
    grpc_port: Annotated[Optional[int], typer.Option(help="OIP v2 gRPC port (0: none).")] = 8081,
    keys: Annotated[Path, typer.Option(help="API keys file (see `guard keys create`).")] = Path("mlwarden-keys.json"),
    state: Annotated[Optional[str], typer.Option(help="Shared state for replicas, e.g. redis://127.0.0.1:6379/0.")] = None,
    audit_log: Annotated[Path, typer.Option(help="SQLite audit log (hash-chained).")] = Path("mlwarden-guard-audit.db"),
    audit_key_file: Annotated[Optional[Path], typer.Option(help="HMAC key for the log's chain.")] = None,
    feedback_db: Annotated[Path, typer.Option(help="Accepted and quarantined feedback.")] = Path("mlwarden-feedback.db"),
    tls_cert: Annotated[Optional[Path], typer.Option(help="Server certificate (PEM).")] = None,
    tls_key: Annotated[Optional[Path], typer.Option(help="Server key (PEM).")] = None,
    tls_client_ca: Annotated[Optional[Path], typer.Option(help="Require client certificates from this CA (mTLS).")] = None,
    upstream: Annotated[Optional[str], typer.Option(help="Proxy this OIP v2 server instead of serving the artifact; "
                                                     "its key comes from $MLWARDEN_UPSTREAM_KEY.")] = None,
    detect: Annotated[bool, typer.Option(help="Stateful attack detection.")] = True,
) -> None:
    """Serve the spec's model (or proxy --upstream) behind the guard, over REST and gRPC.

    Example: mlwarden guard --spec mlwarden.yaml --keys keys.json --port 8080 --grpc-port 8081
    """
    if ctx.invoked_subcommand is not None:
        return
    from .cli_guard import guard_command

    raise typer.Exit(guard_command(spec, host=host, port=port, grpc_port=grpc_port or None, keys=keys, state=state,
                                   audit_log=audit_log, audit_key_file=audit_key_file, feedback_db=feedback_db,
                                   tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
                                   upstream=upstream, upstream_key=os.environ.get("MLWARDEN_UPSTREAM_KEY"),
                                   detect=detect))


@keys_app.command("create")
def guard_keys_create(
    keys: Annotated[Path, typer.Option(help="API keys file (created if missing).")],
    name: Annotated[str, typer.Option(help="A name for the key's holder.")],
    model: Annotated[Optional[list[str]], typer.Option(help="Models the key may call (repeatable; default all).")] = None,
    output: Annotated[str, typer.Option(help="label, topk or proba.")] = "label",
    daily: Annotated[int, typer.Option(help="Rows per day.")] = 10_000,
    rate: Annotated[float, typer.Option(help="Requests per second.")] = 10.0,
    feedback: Annotated[bool, typer.Option(help="May post labelled feedback.")] = False,
) -> None:
    """Add an API key; prints it once and stores only its hash.

    Example: mlwarden guard keys create --keys keys.json --name scoring-app --output label
    """
    from .cli_guard import keys_create

    raise typer.Exit(keys_create(keys, name, models=model, output=output, daily=daily, rate=rate, feedback=feedback))


@guard_app.command("verify-log")
def guard_verify_log(
    db: Annotated[Path, typer.Argument(help="The guard's audit log (SQLite).")],
    expect_head: Annotated[Optional[str], typer.Option(help="SEQ:HASH recorded elsewhere: catches a cut tail.")] = None,
    key_file: Annotated[Optional[Path], typer.Option(help="HMAC key of a keyed log.")] = None,
) -> None:
    """Check the audit log's hash chain; exit 1 on any edited, deleted, reordered or inserted entry.

    Example: mlwarden guard verify-log mlwarden-guard-audit.db --expect-head 1042:9f2c…
    """
    from .cli_guard_log import verify_log_command

    raise typer.Exit(verify_log_command(db, expect_head, key_file))


def _write_reports(report, out: Path, formats) -> None:
    from .report.console import print_summary

    from .report.write import write_reports

    try:
        written = write_reports(report, out, formats)
    except OSError as e:
        raise MlwardenError(f"{out}: cannot write the reports: {e.strerror or e}") from e
    print_summary(report, err)
    for path in written:
        err.print(f"wrote {path}")


def _exit_code(report, threshold) -> int:
    if threshold is not None and report.exit_code(threshold):
        return 1
    return 3 if any(c.status == "error" for c in report.checks) else 0


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Model files or folders (recursive).")],
    format: Annotated[str, typer.Option("--format", "-f", help="text, json, sarif or html.")] = "text",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the report here instead of stdout.")] = None,
    allow: Annotated[Optional[list[str]], typer.Option(help="Also admit this pickle global, e.g. "
                                                       "mypkg.Scaler or mypkg.* (repeatable).")] = None,
    fail_on: FailOn = "high",
) -> None:
    """Scan model files (pickle, joblib, PyTorch, numpy, Keras, ONNX, safetensors, GGUF,
    archives) without loading them. Unparseable files are findings, never "clean".

    Example: mlwarden scan models/ --format sarif --out scan.sarif --allow mypkg.Scaler
    """
    from .scan_report import run_scan, scan_formatter, write_scan

    threshold = _fail_on(fail_on)
    try:
        formatter = scan_formatter(format)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--format") from None
    scans, report = run_scan(paths, allow=_split(allow))
    write_scan(scans, report, formatter, out)
    raise typer.Exit(_exit_code(report, threshold))


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where to build the demo pipeline.")] = Path("mlwarden-demo"),
    engine: Annotated[str, typer.Option(help="local or dask.")] = "local",
    fail_on: FailOn = "none",
) -> None:
    """Build a loan-approval pipeline from real public data (Boston HMDA 1990), the way a
    hurried team would, and audit it. Needs no network.

    Example: mlwarden demo --workdir /tmp/mlwarden-demo
    """
    from .audit import run_audit
    from .demo import build_demo
    from .report import Format
    from .spec import load_spec

    spec_path = build_demo(workdir)
    err.print(f"built the demo pipeline in {workdir} (spec: {spec_path})")
    report = run_audit(load_spec(spec_path), engine=engine)
    out = workdir / "report"
    _write_reports(report, out, [Format.HTML, Format.JSON, Format.SARIF])
    err.print(f"open the report: {(out / 'report.html').resolve()}")
    raise typer.Exit(_exit_code(report, _fail_on(fail_on)))


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the spec.")] = Path("mlwarden.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example mlwarden.yaml to start from.

    Example: mlwarden init pipelines/loans/mlwarden.yaml
    """
    from .spec import EXAMPLE

    if path.exists() and not force:
        raise MlwardenError(f"{path}: already exists; pass --force to overwrite it")
    try:
        path.write_text(EXAMPLE, encoding="utf-8")
    except OSError as e:
        raise MlwardenError(f"{path}: cannot write: {e.strerror or e}") from e
    err.print(f"wrote {path}; edit it, then run `mlwarden audit {path}`")


@app.command()
def checks(
    explain: Annotated[Optional[str], typer.Option(help="Show the documentation of one check.")] = None,
) -> None:
    """List every check, or explain one.

    Example: mlwarden checks --explain data.leakage.exact_duplicates
    """
    from rich.table import Table

    from .references import lookup
    from .registry import all_checks, get_check

    out = Console(highlight=False)
    if explain:
        cls = get_check(explain)
        if cls is None:
            raise MlwardenError(f"no check {explain!r}; `mlwarden checks` lists them")
        out.print(f"[bold]{cls.id}[/] — {cls.title}\n")
        out.print(cls.doc())
        out.print("\nneeds: " + (", ".join(cls.needs) or "nothing") + f"; stage: {cls.stage}")
        for ref in cls.references:
            r = lookup(ref)
            out.print(f"  {r.id}: {r.title} {r.url}")
        return
    registry = all_checks()
    table = Table(title=f"{len(registry)} checks")
    table.add_column("id", no_wrap=True)
    for col in ("stage", "needs", "title"):
        table.add_column(col)
    for cid, cls in registry.items():
        table.add_row(cid, cls.stage, ", ".join(cls.needs), cls.title)
    out.print(table)


@manifest_app.command("create")
def manifest_create(
    spec: SpecArg = Path("mlwarden.yaml"),
    out: Annotated[Optional[Path], typer.Option(help="Manifest path (default: the spec's `manifest:` or "
                                                "mlwarden.manifest.json beside the spec).")] = None,
) -> None:
    """Fingerprint every data and model file (sha256, rows, schema) and every row into a manifest.

    Example: mlwarden manifest create mlwarden.yaml
    """
    from . import manifest
    from .audit import open_sources
    from .spec import load_spec

    s = load_spec(spec)
    target = out or Path(s.manifest_path())
    m = manifest.create(s, open_sources(s).datasets, target)
    err.print(f"wrote {target}: {len(m.resources)} files, subject sha256 {m.subject_digest()}")


@manifest_app.command("verify")
def manifest_verify(
    spec: SpecArg = Path("mlwarden.yaml"),
    manifest_path: Annotated[Optional[Path], typer.Option("--manifest", help="Manifest to verify against.")] = None,
    key: Annotated[Optional[Path], typer.Option(help="Ed25519 public key: also require a valid signature "
                                                "(MANIFEST.sig); any doubt fails.")] = None,
) -> None:
    """Report every file and row that changed, appeared or vanished since the manifest; exit 1 on any.

    Example: mlwarden manifest verify mlwarden.yaml --key team.pub
    """
    from . import manifest
    from .audit import open_sources
    from .manifest.signing import SignatureError, verify
    from .report.console import printable
    from .spec import load_spec

    s = load_spec(spec)
    path = manifest_path or Path(s.manifest_path())
    out = Console(highlight=False, markup=False, emoji=False)  # file names below come from the data
    if key is not None:
        try:
            kid = verify(path, key)
        except SignatureError as e:
            out.print(f"signature: FAILED: {e}")
            raise typer.Exit(1) from None
        out.print(f"signature: ok (key {kid[:16]})")
    old = manifest.read(path)
    datasets = open_sources(s).datasets
    diff = manifest.compare(old, manifest.collect(s, datasets))
    row_diffs = manifest.verify_rows(old, path, s, datasets)
    for label, names in (("changed", diff.changed), ("added", diff.added), ("removed", diff.removed)):
        for name in names:
            out.print(f"{label}: {printable(name)}")
    for split, (a, b) in diff.rows.items():
        out.print(f"rows: data.{split} {a} -> {b}")
    for split, change in diff.schema.items():
        out.print(f"schema: data.{split} {change}")
    for rd in row_diffs:
        out.print(f"row changes: data.{rd.split}: {rd.added} added, {rd.removed} removed, {rd.altered} altered "
                  f"(by {'id' if rd.keyed else 'row content'}); e.g. {printable(rd.samples)}")
    if diff or row_diffs:
        raise typer.Exit(1)
    out.print(f"ok: {len(old.resources)} files match the manifest")


@manifest_app.command("keygen")
def manifest_keygen(
    out: Annotated[Path, typer.Option("--out", help="Private key path; the public key goes to OUT.pub.")],
) -> None:
    """Create an Ed25519 key pair for signing manifests.

    Example: mlwarden manifest keygen --out ~/.mlwarden/team.key
    """
    from .manifest.signing import keygen

    pub = keygen(out)
    err.print(f"wrote {out} (private, mode 0600) and {pub} (public: share it with whoever verifies)")


@manifest_app.command("sign")
def manifest_sign(
    spec: SpecArg = Path("mlwarden.yaml"),
    key: Annotated[Path, typer.Option(help="Ed25519 private key (from `mlwarden manifest keygen`).")] = ...,  # type: ignore[assignment]
    manifest_path: Annotated[Optional[Path], typer.Option("--manifest", help="Manifest to sign.")] = None,
) -> None:
    """Sign the manifest (DSSE envelope, Ed25519) into MANIFEST.sig.

    Example: mlwarden manifest sign mlwarden.yaml --key team.key
    """
    from .manifest.signing import sign
    from .spec import load_spec

    path = manifest_path or Path(load_spec(spec).manifest_path())
    if not path.exists():
        raise MlwardenError(f"{path}: no such manifest; create one with `mlwarden manifest create`")
    err.print(f"wrote {sign(path, key)}")


@app.command()
def checklist(
    spec: SpecArg = Path("mlwarden.yaml"),
    report: Annotated[Optional[Path], typer.Option("--report", help="report.json of an earlier audit; without it "
                                                   "the audit runs now.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the Markdown here instead of stdout.")] = None,
    engine: Annotated[str, typer.Option(help="local or dask (when the audit runs now).")] = "local",
) -> None:
    """Write an evidence-backed ethics checklist (Deon's five sections) as Markdown: each item
    with the last audit's findings and metrics that bear on it, and the question left for a person.

    Example: mlwarden checklist mlwarden.yaml --report mlwarden-report/report.json --out checklist.md
    """
    import json

    from .checklist import build, load_report, render_markdown

    if report is not None:
        doc = load_report(report)
    else:
        from .audit import run_audit
        from .report.json import JsonFormat
        from .spec import load_spec

        doc = json.loads(JsonFormat().render(run_audit(load_spec(spec), engine=engine)))
    text = render_markdown(build(doc), doc)
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise MlwardenError(f"{out}: cannot write: {e.strerror or e}") from e
    err.print(f"wrote {out}")


def _version(value: bool) -> None:
    if value:
        print(f"mlwarden {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Pen-test and guard machine-learning pipelines."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: one place that turns errors into exit codes and one-line messages."""
    try:
        # in non-standalone mode typer returns typer.Exit's code instead of raising it
        code = app(args=argv, prog_name="mlwarden", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        err.print("aborted")
        return 130
    except typer.TyperException as e:  # usage errors (typer vendors click: no click import here)
        # typer's vendored ClickException subclasses TyperException and has show(); the bare base has not
        if hasattr(e, "show"):
            e.show(file=sys.stderr)
        else:
            print(f"mlwarden: error: {e}", file=sys.stderr)
        return 2
    except MlwardenError as e:
        print(f"mlwarden: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: say so plainly, keep the traceback for whoever debugs
        if os.environ.get("MLWARDEN_DEBUG"):
            traceback.print_exc()
        print(f"mlwarden: internal error: {type(e).__name__}: {e} (set MLWARDEN_DEBUG=1 for the traceback; "
              "please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
