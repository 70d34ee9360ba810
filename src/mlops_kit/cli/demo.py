"""`mlops-kit demo`: the whole lifecycle on the embedded backend, end to end, for real:
synthetic data -> spec -> upload -> validate -> train -> ONNX + parity -> register -> promote ->
HTTP serving (good + bad request) -> drifted traffic -> monitoring -> a broken upload quarantined.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.panel import Panel

from mlops_kit.cli.common import (
    EXIT_FAILED,
    UsageError,
    console,
    emit,
    err,
    failed,
    handle_errors,
    settings,
)
from mlops_kit.cli.progress import BAD, OK, Steps
from mlops_kit.core import layout

app = typer.Typer()


def _http(url: str, body: dict | None, token: str | None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback URL
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


MARKER = ".mlops-kit-demo"  # written into every workspace the demo creates


def prepare_workspace(workspace: Path) -> Path:
    """A workspace the demo may fill. It never deletes a folder it did not create: a new or
    empty folder is used as is; a folder holding the demo's marker (an earlier demo run) is
    cleared; anything else is refused, and so is the current directory or one of its parents."""
    workspace = workspace.expanduser().resolve()
    if workspace.exists() and not workspace.is_dir():
        raise UsageError(f"--workspace {workspace}: exists and is not a folder", field="workspace")
    if workspace.exists() and any(workspace.iterdir()):
        cwd = Path.cwd().resolve()
        if not (workspace / MARKER).is_file():
            raise UsageError(
                f"--workspace {workspace}: the folder is not empty and was not created by the "
                "demo; give a new or empty folder (nothing was deleted)", field="workspace")
        if workspace == cwd or workspace in cwd.parents:
            raise UsageError(f"--workspace {workspace}: is the current directory (or holds "
                             "it); run the demo from elsewhere (nothing was deleted)",
                             field="workspace")
        shutil.rmtree(workspace)  # an earlier demo run's folder: ours to clear
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / MARKER).write_text("created by `mlops-kit demo`; the demo may clear it\n")
    return workspace


def run_demo(workspace: Path, *, rows: int = 4000, quiet: bool = False) -> dict[str, Any]:
    from mlops_kit.bootstrap import local_backend
    from mlops_kit.core.monitoring.usecase import run_monitor
    from mlops_kit.core.synthetic import CHURN_SPEC, broken_churn_csv, churn_csv, churn_records
    from mlops_kit.local.auth import ensure_token
    from mlops_kit.local.server import ServerThread, build_api
    from mlops_kit.local.worker import announcer, run_once, upload

    workspace = prepare_workspace(workspace)
    s = settings().model_copy(update={"workspace": workspace, "backend": "local",
                                      "refresh_seconds": 0.0})
    b = local_backend(s)
    inputs = workspace / "inputs"
    inputs.mkdir()
    summary: dict[str, Any] = {"workspace": str(workspace)}
    with Steps(err, enabled=True) as steps:
        import yaml

        steps.begin("applying the churn spec")
        b.ctx.store.put(layout.spec_key("churn"), yaml.safe_dump(CHURN_SPEC, sort_keys=False).encode())
        steps.end("spec", "spec applied: specs/churn.yaml (binary classification, 7 features)")

        steps.begin(f"generating {rows} synthetic customers with missing values")
        (inputs / "churn.csv").write_bytes(churn_csv(rows, seed=7))
        up = upload(b, inputs / "churn.csv", "churn")
        steps.end("uploaded", f"uploaded {up['key']} ({up['size']:,} bytes)")

        b.ctx.progress = steps.core_step
        results = run_once(b, progress=steps.worker_event)
        b.ctx.progress = None
        trained = next((r for r in results if "version" in r and "metrics" in r), None)
        validated = next((r for r in results if r.get("status") == "validated"), None)
        if trained is None or validated is None or failed(results):
            summary.update(model="churn", status="failed", failed=True, results=results,
                           steps=steps.record)
            return summary
        summary.update(model="churn", version=trained["version"], metrics=trained["metrics"],
                       parity=trained["parity"], promoted=trained["promoted"],
                       validation={"rows": validated["rows"], "report_key": validated["report_key"]})

        steps.begin("starting the HTTP server on a free localhost port (bearer token auth)")
        token = ensure_token(workspace)
        srv = ServerThread(build_api(b, auth=True, workspace=workspace)).start()
        try:
            steps.end("serving", f"serving at {srv.url}")
            url = f"{srv.url}/v1/models/churn:predict"
            steps.begin("a good request, a bad one and one without a token")
            good = churn_records(2, seed=99)
            for r in good:
                r.pop("churned"), r.pop("customer_id")
            status, body = _http(url, {"instances": good}, token)
            summary["example_prediction"] = {"status": status, "request": good[0], **body}
            bad = dict(good[0], age="old")
            bad_status, bad_body = _http(url, {"instances": [bad]}, token)
            summary["bad_request"] = {"status": bad_status, **bad_body}
            noauth_status, _ = _http(url, {"instances": good}, None)
            summary["unauthenticated_status"] = noauth_status
            steps.end("requests", f"good request {status} -> {body.get('predictions')}, bad "
                                  f"request {bad_status} ({bad_body.get('error')}), no token "
                                  f"{noauth_status}")

            steps.begin("drifted traffic: 600 requests from a shifted population")
            drifted = churn_records(600, seed=5, drift=1.0)
            for i in range(0, len(drifted), 50):
                batch = [{k: v for k, v in r.items() if k not in ("churned", "customer_id")}
                         for r in drifted[i:i + 50]]
                _http(url, {"instances": batch}, token)
        finally:
            srv.stop()
        steps.end("drifted traffic", "drifted traffic sent and captured (600 requests)")

        steps.begin("monitoring: drift vs the training profile")
        report = run_monitor(b.ctx, "churn", window_hours=1, announce=announcer(b))
        summary["drift"] = {
            "status": report.get("status"), "drifted": report.get("drifted"),
            "drifted_features": report.get("drift", {}).get("drifted_features", []),
            "prediction_drift": report.get("prediction_drift", {}).get("drifted"),
            "rows": report.get("rows"), "report_key": report.get("report_key"),
            "html_report": str(b.ctx.store.local_path(report["html_key"]))  # type: ignore[attr-defined]
            if report.get("html_key") else None}
        steps.end("monitoring", f"drift {'DETECTED' if report.get('drifted') else 'not detected'}"
                                f" on {summary['drift']['drifted_features']} "
                                f"({report.get('rows')} rows)")

        steps.begin("uploading a broken dataset (it must be quarantined)")
        (inputs / "churn-broken.csv").write_bytes(broken_churn_csv())
        upload(b, inputs / "churn-broken.csv", "churn")
        q = next((r for r in run_once(b) if r.get("status") in ("quarantined", "validated")), {})
        report_doc = json.loads(b.ctx.store.get(q["quarantine_report_key"])) \
            if q.get("quarantine_key") else {}
        rules = [r for r in report_doc.get("rules", []) if not r.get("passed")]
        summary["quarantine"] = {"status": q.get("status"),
                                 "quarantined_key": q.get("quarantine_key"),
                                 "report_key": q.get("quarantine_report_key"),
                                 "original_kept": b.ctx.store.exists(q["dataset_key"])
                                 if q.get("dataset_key") else False,
                                 "summary": q.get("summary"),
                                 "failed_rules": [{k: r.get(k) for k in
                                                   ("rule", "column", "count", "examples")}
                                                  for r in rules]}
        summary["quarantined_key"] = q.get("quarantine_key")
        steps.end("quarantine", f"{q.get('status')}: {q.get('quarantine_key')} — "
                                f"{q.get('summary')}", mark=OK if q.get("quarantine_key") else BAD)
    summary["failed"] = not q.get("quarantine_key")  # the broken dataset got through: a bug
    summary["steps"] = steps.record
    return summary


@app.command()
@handle_errors
def demo(workspace: Path = typer.Option(None, "--workspace", help="Default: a fresh temp dir."),
         rows: int = typer.Option(4000, min=300), as_json: bool = typer.Option(False, "--json")) -> None:
    """Run the whole lifecycle on the embedded local backend.

    Never deletes a folder it did not create. Exits 1 if the demo's own job failed."""
    ws = workspace or Path(tempfile.mkdtemp(prefix="mlops-kit-demo-"))
    summary = run_demo(ws, rows=rows, quiet=as_json)
    if as_json or summary.get("status") == "failed":
        emit(summary, as_json, lambda d: err.print(
            "[red]demo failed:[/red] " + "; ".join(
                f"{r.get('status')} {r.get('error') or r.get('summary') or r.get('reasons') or ''}"
                for r in d.get("results", [])), soft_wrap=True))
        if summary.get("failed"):
            raise typer.Exit(EXIT_FAILED)
        return
    console.print(Panel.fit(
        f"model [bold]churn[/bold] v{summary['version']} champion={summary['promoted']}\n"
        f"metrics: " + ", ".join(f"{k}={v:.3f}" for k, v in summary["metrics"].items()) + "\n"
        f"parity: {'passed' if summary['parity'].get('passed') else 'FAILED'} "
        f"(max |diff| {summary['parity'].get('max_abs_diff', 0):.1e})\n"
        f"prediction: {summary['example_prediction'].get('predictions')} "
        f"p={summary['example_prediction'].get('probabilities')}\n"
        f"bad request -> {summary['bad_request']['status']}: {summary['bad_request'].get('error')}\n"
        f"drift: {summary['drift']['drifted']} on {summary['drift']['drifted_features']}\n"
        f"quarantined: {summary['quarantined_key']}\n"
        f"drift report: {summary['drift'].get('html_report')}\n"
        f"workspace: {summary['workspace']}", title="mlops-kit demo"))
    if summary["quarantine"]["failed_rules"]:
        from rich.table import Table

        t = Table("rule", "column", "count", "examples (row: value)", title="quarantine report")
        for r in summary["quarantine"]["failed_rules"]:
            ex = ", ".join(f"{e['row']}: {e['value']}" for e in (r.get("examples") or [])[:3])
            t.add_row(*(escape(str(c)) for c in (r["rule"], r.get("column"), r.get("count"), ex)))
        console.print(t)
    if summary.get("failed"):
        raise typer.Exit(EXIT_FAILED)
