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
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn

from mlops_kit.cli.common import console, emit, handle_errors, settings
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


def run_demo(workspace: Path, *, rows: int = 4000, quiet: bool = False) -> dict[str, Any]:
    from mlops_kit.bootstrap import local_backend
    from mlops_kit.core.monitoring.monitor import run_monitor
    from mlops_kit.core.synthetic import CHURN_SPEC, broken_churn_csv, churn_csv, churn_records
    from mlops_kit.local.auth import ensure_token
    from mlops_kit.local.server import ServerThread, build_api
    from mlops_kit.local.worker import announcer, run_once, upload

    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    s = settings().model_copy(update={"workspace": workspace, "backend": "local",
                                      "refresh_seconds": 0.0})
    b = local_backend(s)
    inputs = workspace / "inputs"
    inputs.mkdir()
    summary: dict[str, Any] = {"workspace": str(workspace)}
    steps = Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console,
                     disable=quiet, transient=False)
    with steps:
        t = steps.add_task("spec: churn (binary classification, 7 features)")
        import yaml

        b.ctx.store.put(layout.spec_key("churn"), yaml.safe_dump(CHURN_SPEC, sort_keys=False).encode())
        steps.update(t, description="spec applied: specs/churn.yaml")

        t = steps.add_task(f"dataset: {rows} synthetic customers with missing values")
        (inputs / "churn.csv").write_bytes(churn_csv(rows, seed=7))
        up = upload(b, inputs / "churn.csv", "churn")
        steps.update(t, description=f"uploaded {up['key']} ({up['size']:,} bytes)")

        t = steps.add_task("validate -> train -> export ONNX -> parity -> register -> promote")
        results = run_once(b)
        trained = next(r for r in results if "version" in r)
        validated = next(r for r in results if r.get("status") == "validated")
        steps.update(t, description=(
            f"v{trained['version']} {trained['status']}, promoted={trained['promoted']}, "
            f"roc_auc={trained['metrics'].get('roc_auc', 0):.3f}, parity max diff "
            f"{trained['parity'].get('max_abs_diff', 0):.2e}"))
        summary.update(model="churn", version=trained["version"], metrics=trained["metrics"],
                       parity=trained["parity"], promoted=trained["promoted"],
                       validation={"rows": validated["rows"], "report_key": validated["report_key"]})

        t = steps.add_task("HTTP server on a free localhost port (bearer token auth)")
        token = ensure_token(workspace)
        srv = ServerThread(build_api(b, auth=True, workspace=workspace)).start()
        try:
            url = f"{srv.url}/v1/models/churn:predict"
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
            steps.update(t, description=(
                f"served at {srv.url}: good request {status} -> {body.get('predictions')}, "
                f"bad request {bad_status} ({bad_body.get('error')}), no token {noauth_status}"))

            t = steps.add_task("drifted traffic: 600 requests from a shifted population")
            drifted = churn_records(600, seed=5, drift=1.0)
            for i in range(0, len(drifted), 50):
                batch = [{k: v for k, v in r.items() if k not in ("churned", "customer_id")}
                         for r in drifted[i:i + 50]]
                _http(url, {"instances": batch}, token)
        finally:
            srv.stop()
        steps.update(t, description="drifted traffic sent and captured")

        t = steps.add_task("monitoring: drift vs the training profile")
        report = run_monitor(b.ctx, "churn", window_hours=1, announce=announcer(b))
        summary["drift"] = {
            "status": report.get("status"), "drifted": report.get("drifted"),
            "drifted_features": report.get("drift", {}).get("drifted_features", []),
            "prediction_drift": report.get("prediction_drift", {}).get("drifted"),
            "rows": report.get("rows"), "report_key": report.get("report_key"),
            "html_report": str(b.ctx.store.local_path(report["html_key"]))  # type: ignore[attr-defined]
            if report.get("html_key") else None}
        steps.update(t, description=(
            f"drift {'DETECTED' if report.get('drifted') else 'not detected'} on "
            f"{summary['drift']['drifted_features']} ({report.get('rows')} rows)"))

        t = steps.add_task("a broken dataset upload")
        (inputs / "churn-broken.csv").write_bytes(broken_churn_csv())
        upload(b, inputs / "churn-broken.csv", "churn")
        q = next(r for r in run_once(b) if r.get("status") in ("quarantined", "validated"))
        report_doc = json.loads(b.ctx.store.get(q["quarantine_report_key"])) \
            if q.get("quarantine_key") else {}
        failed = [r for r in report_doc.get("rules", []) if not r.get("passed")]
        summary["quarantine"] = {"status": q["status"], "quarantined_key": q.get("quarantine_key"),
                                 "report_key": q.get("quarantine_report_key"),
                                 "original_kept": b.ctx.store.exists(q["dataset_key"]),
                                 "summary": q.get("summary"),
                                 "failed_rules": [{k: r.get(k) for k in
                                                   ("rule", "column", "count", "examples")}
                                                  for r in failed]}
        summary["quarantined_key"] = q.get("quarantine_key")
        steps.update(t, description=f"{q['status']}: {q.get('quarantine_key')} — {q.get('summary')}")
    return summary


@app.command()
@handle_errors
def demo(workspace: Path = typer.Option(None, "--workspace", help="Default: a fresh temp dir."),
         rows: int = typer.Option(4000, min=300), as_json: bool = typer.Option(False, "--json")) -> None:
    """Run the whole lifecycle on the embedded local backend."""
    ws = workspace or Path(tempfile.mkdtemp(prefix="mlops-kit-demo-"))
    summary = run_demo(ws, rows=rows, quiet=as_json)
    if as_json:
        emit(summary, True)
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
            t.add_row(str(r["rule"]), str(r.get("column")), str(r.get("count")), ex)
        console.print(t)
