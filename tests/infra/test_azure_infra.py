"""The Azure program (mlops-kit:cloud azure) under pulumi mocks: one test per security control,
plus the rendering of the topology's grants as role assignments."""

from __future__ import annotations

import json

import pytest

from infra.azure_stack.config import name_suffix, parse_azure_config
from infra.azure_stack.rbac import ROLES, grants
from mlops_kit.topology import default_topology
from tests.infra.azure_harness import LOCATION, SUB, run_azure

T = default_topology()
FUNCTIONS = [f.name for f in T.functions]
SUFFIX = name_suffix(SUB, "mlops-kit", "azure")  # global names: <prefix>st<suffix>, ...


@pytest.fixture(scope="module")
def graph():
    return run_azure({"mlops-kit:cloud": "azure", "mlops-kit:namePrefix": "mlk-test",
                      "mlops-kit:alarmEmail": "oncall@example.com",
                      "mlops-kit:azureAuthClientId": "11111111-2222-3333-4444-555555555555",
                      "azure-native:location": LOCATION})


def test_storage_account_is_locked_down(graph):
    data = graph.one("azure-native:storage:StorageAccount", "storage-account").inputs
    assert data["allowSharedKeyAccess"] is False  # no account keys, no SAS: Entra ID only
    assert data["allowBlobPublicAccess"] is False
    assert data["minimumTlsVersion"] == "TLS1_2" and data["enableHttpsTrafficOnly"] is True
    assert data["allowCrossTenantReplication"] is False
    # the Functions host's own account too
    host = graph.one("azure-native:storage:StorageAccount", "functions-host").inputs
    assert host["allowSharedKeyAccess"] is False and host["allowBlobPublicAccess"] is False


def test_versioning_and_soft_delete(graph):
    props = graph.one("azure-native:storage:BlobServiceProperties", "storage-blob-service").inputs
    assert props["isVersioningEnabled"] is True
    assert props["deleteRetentionPolicy"]["enabled"] is True
    assert props["containerDeleteRetentionPolicy"]["enabled"] is True


def test_containers_are_private_and_match_the_topology(graph):
    containers = {r.inputs["containerName"]: r.inputs for r in
                  graph.of("azure-native:storage:BlobContainer")}
    for st in T.stores:
        assert containers[st.name]["publicAccess"] == "None"
    assert all(c["publicAccess"] == "None" for c in containers.values())


def test_queues_poison_queues_alerts_and_table(graph):
    queues = {r.inputs["queueName"] for r in graph.of("azure-native:storage:Queue")}
    for q in T.queues:
        assert {q.name, f"{q.name}-poison"} <= queues
    assert T.topic in queues
    assert graph.of("azure-native:storage:Table")[0].inputs["tableName"] == T.table.name


def test_blob_created_reaches_the_validate_queue_prefix_filtered_with_identity(graph):
    topic = graph.of("azure-native:eventgrid:SystemTopic")[0].inputs
    assert topic["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert topic["source"].endswith(f"/storageAccounts/mlktestst{SUFFIX}")
    subs = graph.of("azure-native:eventgrid:SystemTopicEventSubscription")
    assert len(subs) == len(T.object_triggers)
    # resources register in whatever order their inputs resolve: pair them by prefix
    by_subject = {s.inputs["filter"]["subjectBeginsWith"]: s for s in subs}
    for trig in T.object_triggers:
        sub = by_subject[f"/blobServices/default/containers/{trig.store}/blobs/{trig.prefix}"]
        f = sub.inputs["filter"]
        assert f["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
        dest = sub.inputs["deliveryWithResourceIdentity"]
        assert dest["identity"]["type"] == "SystemAssigned"  # no keys on the subscription
        assert dest["destination"]["queueName"] == trig.queue
    # the topic's identity may only send to the validate queue
    sends = [r for r in graph.of("azure-native:authorization:RoleAssignment")
             if r.name.startswith("blob-events-send-")]
    assert [r.inputs["scope"].rsplit("/", 1)[-1] for r in sends] == ["validate"]
    assert all(r.inputs["roleDefinitionId"].endswith(ROLES["queue_sender"]) for r in sends)


def test_one_flex_consumption_linux_app_per_function(graph):
    plans = graph.of("azure-native:web:AppServicePlan")
    assert len(plans) == len(FUNCTIONS)
    assert all(p.inputs["sku"] == {"name": "FC1", "tier": "FlexConsumption"} for p in plans)
    assert all(p.inputs["reserved"] is True for p in plans)  # Linux
    apps = {r.inputs["name"]: r.inputs for r in graph.of("azure-native:web:WebApp")}
    assert sorted(apps) == sorted(f"mlktest-{f}-{SUFFIX}" for f in FUNCTIONS)
    for app in apps.values():
        assert app["kind"] == "functionapp,linux" and app["httpsOnly"] is True
        assert app["siteConfig"]["minTlsVersion"] == "1.2"
        assert app["siteConfig"]["ftpsState"] == "Disabled"
        assert app["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
        assert app["identity"]["type"] == "UserAssigned"


def test_each_function_has_its_own_identity_and_only_its_grants(graph):
    idents = graph.of("azure-native:managedidentity:UserAssignedIdentity")
    assert len(idents) == len(FUNCTIONS)
    assigned = [r for r in graph.of("azure-native:authorization:RoleAssignment")
                if r.name.startswith("functions-") and not r.name.endswith("-host")]
    expected = grants(T)
    assert len(assigned) == len(expected)
    for g in expected:
        r = graph.one("azure-native:authorization:RoleAssignment",
                      f"functions-{g.function}-{g.kind}-{g.target}-{g.role}").inputs
        assert r["roleDefinitionId"].endswith(ROLES[g.role])
        leaf = r["scope"].rsplit("/", 1)[-1]  # the container/queue/table, not the account
        assert leaf == g.target or (g.kind == "component" and "/components/" in r["scope"])
        assert r.get("condition") == g.condition
    # nothing is scoped to the whole account or the resource group
    assert not any(r.inputs["scope"].endswith((f"/storageAccounts/mlktestst{SUFFIX}", "/mlk-rg"))
                   for r in assigned)


def test_least_privilege_examples():
    by = {(g.function, g.kind, g.target): g for g in grants(T)}
    serve = [g for g in grants(T) if g.function == "serve"]
    # serve sends only alerts (the notifier queue), never to a pipeline queue
    assert {(g.target, g.role) for g in serve if g.kind == "queue"} <= {(T.topic, "queue_sender")}
    assert by[("serve", "table", T.table.name)].role in ("table_reader", "table_contributor")
    assert ("monitor", "queue", "train") not in by  # the monitor cannot send training jobs
    v = by[("validate", "container", "data")]
    # reads: its prefixes; writes only under quarantine/ (tests/infra/test_azure_deploy_rules.py
    # evaluates every condition)
    assert v.role == "blob_contributor" and "StringLike 'quarantine/*'" in v.condition
    write_clause = v.condition.split("/blobs/write'}")[1]
    assert "'quarantine/*'" in write_clause and "'datasets/*'" not in write_clause.split(")) AND")[0]


def test_app_settings_hold_names_never_secrets(graph):
    for app in graph.of("azure-native:web:WebApp"):
        settings = {s["name"]: s["value"] for s in app.inputs["siteConfig"]["appSettings"]}
        text = json.dumps(settings)
        for secret in ("AccountKey=", "SharedAccessSignature", "sig=", "password",
                       "DefaultEndpointsProtocol"):
            assert secret not in text
        assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
        assert settings["MLOPSKIT_BACKEND"] == "azure"
        assert settings["MLOPSKIT_FUNCTION"] in FUNCTIONS


def test_insights_takes_entra_id_only_and_alerts_page_oncall(graph):
    comp = graph.of("azure-native:applicationinsights:Component")[0].inputs
    assert comp["disableLocalAuth"] is True
    group = graph.of("azure-native:monitor:ActionGroup")[0].inputs
    assert group["emailReceivers"][0]["emailAddress"] == "oncall@example.com"
    alerts = graph.of("azure-native:monitor:MetricAlert")
    assert len(alerts) == len(FUNCTIONS) + 2
    assert all(a.inputs["actions"] for a in alerts)


def test_inference_is_authenticated_by_the_platform(graph):
    auth = graph.of("azure-native:web:WebAppAuthSettingsV2")
    assert len(auth) == 1 and auth[0].inputs["name"] == f"mlktest-{T.http.function}-{SUFFIX}"
    v = auth[0].inputs["globalValidation"]
    assert v["requireAuthentication"] is True and v["unauthenticatedClientAction"] == "Return401"
    aad = auth[0].inputs["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True
    assert aad["registration"]["openIdIssuer"].endswith("/v2.0")


def test_bad_azure_config_is_refused_with_every_problem():
    with pytest.raises(ValueError) as e:
        parse_azure_config({"namePrefix": "X", "location": "", "logRetentionDays": "5"})
    msg = str(e.value)
    assert "azure-native:location" in msg and "namePrefix" in msg and "logRetentionDays" in msg
    assert "azureAuthClientId" in msg
