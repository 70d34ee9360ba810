"""What Azure refuses at deploy time, or denies at run time, is refused here first (issue 25).

Mocks accept anything, so each rule below is a provider constraint, with the documentation page
it comes from, asserted against every resource the Azure program renders (at the longest name
prefix config accepts, so name rules are checked at their worst case). docs/deploy-azure.md's
"Deploy-time checks" lists them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.azure_stack.config import FLEX_MEMORY_MB, flex_memory_mb
from infra.azure_stack.operator_access import OPERATOR_ROLES
from infra.azure_stack.rbac import ROLES, grants
from mlops_kit.topology import default_topology
from tests.infra import abac_eval as abac
from tests.infra.azure_harness import LOCATION, run_azure

ROOT = Path(__file__).resolve().parents[2]
T = default_topology()
LONGEST_PREFIX = "mlk" + "x" * 13  # 16 characters: the longest namePrefix Azure accepts
OPERATOR = "99999999-8888-7777-6666-555555555555"

NAMING = "https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules"
# resource type -> (the input holding its name, the rule, the page); every rule must apply to at
# least one rendered resource
NAME_RULES = {
    "azure-native:storage:StorageAccount": ("accountName", r"[a-z0-9]{3,24}", NAMING),
    "azure-native:web:WebApp": ("name", r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,58}[a-zA-Z0-9])?", NAMING),
    "azure-native:storage:BlobContainer": (
        "containerName", r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", NAMING),
    "azure-native:storage:Queue": ("queueName", r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
                                   NAMING),
    "azure-native:storage:Table": ("tableName", r"[A-Za-z][A-Za-z0-9]{2,62}", NAMING),
    "azure-native:managedidentity:UserAssignedIdentity": (
        "resourceName", r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}", NAMING),
    "azure-native:resources:ResourceGroup": ("resourceGroupName", r"[-\w.()]{0,89}[-\w()]",
                                             NAMING),
}
# Names in a global DNS namespace (<account>.blob.core.windows.net, <site>.azurewebsites.net)
GLOBAL_NAMES = {"azure-native:storage:StorageAccount": "accountName",
                "azure-native:web:WebApp": "name"}
FLEX_MEMORY_PAGE = ("https://learn.microsoft.com/azure/azure-functions/"
                    "flex-consumption-plan#instance-memory")
QUEUE_TRIGGER_PAGE = ("https://learn.microsoft.com/azure/azure-functions/"
                      "functions-bindings-storage-queue#grant-permission-to-the-identity")
# learn.microsoft.com/azure/storage/blobs/storage-auth-abac-examples
# ("Read or list blobs in named folders") and storage-auth-abac-attributes (Blob.List: prefix)
ABAC_PAGE = "https://learn.microsoft.com/azure/storage/blobs/storage-auth-abac-examples"
OPERATOR_PAGE = "https://learn.microsoft.com/azure/storage/blobs/assign-azure-role-data-access"


def config(prefix: str = "mlk-test", **extra: str) -> dict[str, str]:
    return {"mlops-kit:cloud": "azure", "mlops-kit:namePrefix": prefix,
            "mlops-kit:alarmEmail": "oncall@example.com",
            "mlops-kit:azureAuthClientId": "11111111-2222-3333-4444-555555555555",
            "azure-native:location": LOCATION,
            **{f"mlops-kit:{k}": v for k, v in extra.items()}}


@pytest.fixture(scope="module")
def longest():
    return run_azure(config(LONGEST_PREFIX, azureOperatorPrincipalId=OPERATOR))


@pytest.fixture(scope="module")
def default():
    return run_azure(config())


def test_the_azure_program_runs_without_pulumi_aws():
    """Item 1: `pip install 'mlops-kit[azure,azure-infra]'` has no pulumi_aws: the program must
    not import it (nor docker-build) for an Azure stack. Run in a fresh interpreter where they
    cannot be imported."""
    script = (
        "import sys\n"
        "sys.modules['pulumi_aws'] = None\n"  # `import pulumi_aws` raises ImportError
        "sys.modules['pulumi_docker_build'] = None\n"
        "from tests.infra.azure_harness import run_azure\n"
        f"g = run_azure({config()!r})\n"
        "assert 'pulumi_aws' not in {m.split('.')[0] for m, v in sys.modules.items() if v}\n"
        "print(len(g.of('azure-native:web:WebApp')))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(len(T.functions))


def test_names_follow_the_azure_naming_rules(longest):
    checked = set()
    for r in longest.resources:
        if r.typ in NAME_RULES:
            key, rule, page = NAME_RULES[r.typ]
            name = r.inputs.get(key)
            assert name is not None, f"{r.typ} {r.name}: no {key}"
            assert re.fullmatch(rule, name), f"{r.typ} {name!r} breaks {rule} ({page})"
            checked.add(r.typ)
    assert checked == set(NAME_RULES)


def test_global_names_differ_between_stacks_with_one_prefix():
    """Storage accounts and function apps are DNS names shared by every Azure customer: the
    stack's names carry a suffix derived from subscription, project and stack, so two stacks
    with the same namePrefix (dev and prod, or two people) do not collide (NAMING)."""
    names = {}
    for stack in ("dev", "prod"):
        g = run_azure(config(), stack=stack)
        names[stack] = {r.inputs[key] for typ, key in GLOBAL_NAMES.items() for r in g.of(typ)}
        assert len(names[stack]) == len(T.functions) + 2  # apps + data and host accounts
    assert not names["dev"] & names["prod"]
    again = run_azure(config(), stack="dev")  # stable: a re-run keeps its names
    assert {r.inputs[k] for t, k in GLOBAL_NAMES.items() for r in again.of(t)} == names["dev"]


def test_flex_instance_memory_is_a_size_flex_offers(longest):
    """Flex Consumption takes instanceMemoryMB 512, 2048 or 4096 only (FLEX_MEMORY_PAGE); each
    app gets the smallest size holding the topology's memory for it."""
    apps = longest.of("azure-native:web:WebApp")
    assert len(apps) == len(T.functions)
    for app in apps:
        fn = next(s["value"] for s in app.inputs["siteConfig"]["appSettings"]
                  if s["name"] == "MLOPSKIT_FUNCTION")
        mb = app.inputs["functionAppConfig"]["scaleAndConcurrency"]["instanceMemoryMB"]
        assert mb in FLEX_MEMORY_MB, (fn, mb, FLEX_MEMORY_PAGE)
        assert mb >= T.function(fn).memory_mb, (fn, mb)


def test_flex_memory_rounds_up_and_refuses_above_the_largest():
    assert [flex_memory_mb("f", m) for m in (128, 512, 513, 2048, 3008, 4096)] == [
        512, 512, 2048, 2048, 4096, 4096]
    with pytest.raises(ValueError, match="train: needs 10240 MB"):
        flex_memory_mb("train", 10240)


def _assignments_of(graph, function: str):
    ident = graph.one("azure-native:managedidentity:UserAssignedIdentity",
                      f"functions-{function}-id")
    return [r for r in graph.of("azure-native:authorization:RoleAssignment")
            if r.inputs["principalId"] == ident.state["principalId"]]


def test_queue_triggered_apps_hold_reader_and_message_processor(longest):
    """A queue trigger's identity needs Storage Queue Data Reader and Storage Queue Data Message
    Processor on its queue (QUEUE_TRIGGER_PAGE)."""
    consumers = {q.consumer for q in T.queues}
    assert consumers
    for fn in consumers:
        for q in T.consumes(fn):
            roles = {r.inputs["roleDefinitionId"].rsplit("/", 1)[-1]
                     for r in _assignments_of(longest, fn)
                     if r.inputs["scope"].endswith(f"/queues/{q}")}
            assert {ROLES["queue_reader"], ROLES["queue_processor"]} <= roles, (
                fn, q, QUEUE_TRIGGER_PAGE)


def _container_grants(graph, function: str) -> dict[str, tuple[str, str | None]]:
    """store -> (role key, condition) of the function's rendered container assignments."""
    by_id = {v: k for k, v in ROLES.items()}
    out = {}
    for r in _assignments_of(graph, function):
        if "/containers/" in r.inputs["scope"]:
            role = by_id[r.inputs["roleDefinitionId"].rsplit("/", 1)[-1]]
            out[r.inputs["scope"].rsplit("/", 1)[-1]] = (role, r.inputs.get("condition"))
    return out


def _allowed(graph, function: str, store: str, op: abac.Operation) -> bool:
    grant = _container_grants(graph, function).get(store)
    return grant is not None and abac.allowed(grant[0], grant[1], op)


def test_every_listing_the_code_does_is_allowed(longest):
    """List Blobs carries no blob path: only `@Request[...blobs:prefix]` can allow it (ABAC_PAGE).
    Each grant that lists (monitor: captures/, labels/) may list under it, and nothing else."""
    listed = 0
    for fn in T.functions:
        for g in fn.stores:
            if g.lists:
                listed += 1
                assert _allowed(longest, fn.name, g.store, abac.list_blobs(f"{g.prefix}churn/"))
                assert _allowed(longest, fn.name, g.store, abac.list_blobs(g.prefix))
        for store in _container_grants(longest, fn.name):
            assert not _allowed(longest, fn.name, store, abac.list_blobs(None)), fn.name
            assert not _allowed(longest, fn.name, store, abac.list_blobs("zzz/")), fn.name
    assert listed >= 2


def test_reads_and_writes_follow_the_grants_paths_and_globs(longest):
    for fn in T.functions:
        for g in fn.stores:
            key = g.prefix + ("churn/x" if g.match == "*" else g.match.replace("*", "churn"))
            if g.access != "write":
                assert _allowed(longest, fn.name, g.store, abac.read(key)), (fn.name, key)
            if g.access != "read":
                assert _allowed(longest, fn.name, g.store, abac.write(key)), (fn.name, key)
    # where the grant names keys, not a prefix: monitor writes only retrain-*.csv datasets
    assert _allowed(longest, "monitor", "data", abac.write("datasets/churn/retrain-1.csv"))
    assert not _allowed(longest, "monitor", "data", abac.write("datasets/churn/train.csv"))
    assert not _allowed(longest, "validate", "data", abac.write("datasets/churn/x.csv"))
    assert not _allowed(longest, "serve", "artifacts", abac.read("reports/churn/x.json"))
    assert _allowed(longest, "serve", "artifacts", abac.read("reports/churn/monitoring/a.html"))


def test_no_function_may_delete_a_blob(longest):
    """AWS grants no s3:DeleteObject to any function: on Azure no data role allows a delete
    (Storage Blob Data Contributor's delete is excluded by the condition)."""
    for fn in T.functions:
        for store in _container_grants(longest, fn.name):
            for key in ("datasets/churn/x.csv", "models/churn/1/model.onnx",
                        "quarantine/churn/x.csv", "captures/churn/parquet/a.parquet"):
                assert not _allowed(longest, fn.name, store, abac.delete(key)), (fn.name, key)


def test_every_condition_parses_and_the_rendered_ones_are_the_grants(longest):
    rendered = {(r.name, r.inputs.get("condition"))
                for r in longest.of("azure-native:authorization:RoleAssignment")
                if r.inputs.get("condition")}
    assert {c for _, c in rendered} == {g.condition for g in grants(T) if g.condition}
    for _, cond in rendered:
        abac.evaluate(cond, abac.read("x"))  # raises on a syntax the evaluator cannot read


@pytest.mark.parametrize("graph_name, principal", [("longest", OPERATOR), ("default", "obj")])
def test_the_operator_gets_data_roles(graph_name, principal, request):
    """Owner/Contributor carry no data permissions with shared keys off (OPERATOR_PAGE): the
    operator (azureOperatorPrincipalId, else whoever runs `pulumi up`) gets blob and table data
    roles, so `upload_command` (--auth-mode login) and the CLI work."""
    graph = request.getfixturevalue(graph_name)
    mine = [r for r in graph.of("azure-native:authorization:RoleAssignment")
            if r.inputs["principalId"] == principal]
    got = {(r.inputs["roleDefinitionId"].rsplit("/", 1)[-1],
            "table" if "/tables/" in r.inputs["scope"] else "account") for r in mine}
    assert got == {(ROLES[role], scope) for role, scope in OPERATOR_ROLES}
    account = graph.of("azure-native:storage:StorageAccount")
    data = next(a for a in account if a.name == "storage-account")
    assert any(r.inputs["scope"].endswith(f"/storageAccounts/{data.inputs['accountName']}")
               for r in mine)
    assert "--auth-mode login" in graph.outputs["upload_command"]


def test_inference_url_matches_the_route_prefix(default):
    """host.json sets routePrefix "" (the KServe paths at the root): the URL has no /api."""
    host = json.loads((ROOT / "functions" / "azure" / "host.json").read_text())
    prefix = host["extensions"]["http"]["routePrefix"]
    url = default.outputs["inference_url"]
    assert re.fullmatch(r"https://[a-z0-9-]+\.azurewebsites\.net", url.rstrip("/") if not prefix
                        else url.removesuffix("/" + prefix)), url
    assert not url.endswith("/api")


LOG_ALERT_PAGE = "https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-create-log-alert-rule"


def test_kit_alerts_reach_people_through_a_log_alert_rule(default):
    """The `alerts` queue was read by nobody: drift, quarantine and training-failure notices
    never reached alarmEmail. A scheduled query rule on Application Insights (LOG_ALERT_PAGE)
    finds the notifier's log records and mails the action group."""
    from infra.azure_stack.monitoring import ALERT_MARKER, ALERT_QUERY
    from mlops_kit.adapters.azure.notifier import ALERT_MARKER as NOTIFIER_MARKER

    assert ALERT_MARKER == NOTIFIER_MARKER
    (rule,) = default.of("azure-native:monitor:ScheduledQueryRule")
    (insights,) = default.of("azure-native:applicationinsights:Component")
    (group,) = default.of("azure-native:monitor:ActionGroup")
    r = rule.inputs
    (scope,) = r["scopes"]
    assert scope.endswith(f"/components/{insights.inputs['resourceName']}")
    assert r["kind"] == "LogAlert" and r["enabled"] is True and r["location"] == LOCATION
    assert r["actions"]["actionGroups"] and r["actions"]["actionGroups"][0].endswith(group.name)
    (cond,) = r["criteria"]["allOf"]
    assert cond["query"] == ALERT_QUERY and f'"{ALERT_MARKER}"' in cond["query"]
    assert (cond["operator"], cond["threshold"]) == ("GreaterThan", 0)
    assert cond["dimensions"][0]["name"] == "subject"
    # ARM: the window is at least the evaluation frequency
    assert r["evaluationFrequency"] == r["windowSize"] == "PT5M"


def test_the_notifier_logs_each_alert_for_the_rule(caplog):
    """The write side: one log record per alert, the marker then the queue message's JSON (the
    rule's query takes the subject from it); the queue message is sent as before."""
    from mlops_kit.adapters.azure.notifier import ALERT_MARKER, QueueNotifier

    sent = []

    class Client:
        def send_message(self, text, time_to_live):
            sent.append((text, time_to_live))

    class Service:
        def get_queue_client(self, name):
            return Client()

    with caplog.at_level("WARNING", logger="mlops_kit.alerts"):
        QueueNotifier("alerts", Service).publish("drift: churn", {"psi": 0.4})
    (record,) = [r for r in caplog.records if r.name == "mlops_kit.alerts"]
    text = record.getMessage()
    assert text.startswith(ALERT_MARKER)
    body = json.loads(text[len(ALERT_MARKER):])
    assert body["subject"] == "drift: churn" and body["message"] == {"psi": 0.4}
    assert len(sent) == 1 and sent[0][1] == -1


EASY_AUTH_PAGE = ("https://learn.microsoft.com/azure/app-service/"
                  "configure-authentication-provider-aad")


def test_console_sign_in_redirects_browsers_to_the_login_page(default):
    """The console behind App Service authentication answered 401 with no way to sign in from a
    browser. With azureConsoleSignIn the platform redirects to Entra ID's login page
    (EASY_AUTH_PAGE) and bearer-token API calls are validated as before; off, the 401 stays."""
    on = run_azure(config(azureConsoleSignIn="true"))
    (auth,) = on.of("azure-native:web:WebAppAuthSettingsV2")
    v = auth.inputs["globalValidation"]
    assert v["requireAuthentication"] is True
    assert v["unauthenticatedClientAction"] == "RedirectToLoginPage"
    assert v["redirectToProvider"] == "azureactivedirectory"
    aad = auth.inputs["identityProviders"]["azureActiveDirectory"]
    assert aad["validation"]["allowedAudiences"]  # API bearer tokens: unchanged
    (off,) = default.of("azure-native:web:WebAppAuthSettingsV2")
    assert off.inputs["globalValidation"]["unauthenticatedClientAction"] == "Return401"


def test_the_evaluator_denies_what_azure_denies():
    """abac_eval can fail: the previous rendering (read narrowed by blob path only) denies every
    listing, since List Blobs carries no path (ABAC_PAGE); a missing prefix fails too."""
    read = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
    path = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path]"
    old = f"((!(ActionMatches{{'{read}'}})) OR ({path} StringStartsWith 'captures/'))"
    assert abac.allowed("blob_reader", old, abac.read("captures/churn/a.cap"))
    assert not abac.allowed("blob_reader", old, abac.list_blobs("captures/churn/"))
    assert not abac.allowed("blob_reader", None, abac.write("captures/x"))  # not in the role
    with pytest.raises(ValueError):
        abac.evaluate("((ActionMatches{'x'}) OR", abac.read("x"))
