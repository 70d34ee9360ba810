"""The Azure rendering of mlops_kit.topology (`pulumi config set mlops-kit:cloud azure`): a
resource group; a storage account (shared-key access off, TLS 1.2, no public blob access,
versioning and soft delete) with the containers, queues (+ poison) and table; an Event Grid
system topic delivering BlobCreated to the validate queue; one Flex Consumption app per
function, each with its own managed identity and least-privilege role assignments;
Application Insights and alerts. Only `main` reads configuration.

Named azure_stack, not azure: Pulumi puts infra/ first on sys.path, and a package named azure
would shadow the Azure SDKs' namespace package."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_azure_native import authorization, resources

from infra.azure_stack.config import AzureConfig, name_suffix, parse_azure_config
from infra.azure_stack.functions import FunctionApps, FunctionAppsArgs
from infra.azure_stack.monitoring import Alerts, AlertsArgs, Insights, InsightsArgs
from infra.azure_stack.operator_access import Operator, OperatorArgs
from infra.azure_stack.rbac import grants
from infra.azure_stack.storage import AzureStorage, AzureStorageArgs
from infra.azure_stack.triggers import BlobEvents, BlobEventsArgs
from mlops_kit.topology import Topology

__all__ = ["build", "main"]


def build(cfg: AzureConfig, topology: Topology, subscription_id: pulumi.Input[str],
          tenant_id: pulumi.Input[str], deployer_id: pulumi.Input[str] = "") -> dict[str, Any]:
    operator_id = cfg.operator_principal_id or deployer_id
    rg = resources.ResourceGroup("rg", resource_group_name=f"{cfg.name_prefix}-rg",
                                 location=cfg.location, tags={"mlops-kit:component": "stack"})
    st = AzureStorage("storage", AzureStorageArgs(topology, cfg.storage_account, rg.name,
                                                  cfg.location))
    scopes: dict[tuple[str, str], pulumi.Input[str]] = {
        **{("container", n): c.id for n, c in st.containers.items()},
        **{("queue", n): q.id for n, q in st.queues.items()},
        ("table", topology.table.name): st.table.id,
    }
    insights = Insights("insights", InsightsArgs(cfg.name_prefix, rg.name, cfg.location,
                                                 cfg.log_retention_days))
    scopes[("component", "insights")] = insights.component.id
    apps = FunctionApps("functions", FunctionAppsArgs(
        topology, cfg.name_prefix, rg.name, cfg.location, subscription_id, st.account.name,
        scopes, grants(topology), insights.component.connection_string,
        python_version=cfg.python_version, instance_memory_mb=cfg.instance_memory_mb,
        maximum_instance_count=cfg.maximum_instance_count, tenant_id=tenant_id,
        auth_client_id=cfg.auth_client_id, console_sign_in=cfg.console_sign_in,
        host_account=cfg.host_account,
        site_names={f.name: cfg.site_name(f.name) for f in topology.functions}))
    Operator("operator", OperatorArgs(operator_id, subscription_id, st.account.id,
                                      st.table.id))
    BlobEvents("blob-events", BlobEventsArgs(topology, rg.name, cfg.location, st.account.id,
                                             {n: q.id for n, q in st.queues.items()},
                                             subscription_id))
    Alerts("alerts", AlertsArgs(cfg.name_prefix, rg.name, cfg.alarm_email,
                                {n: a.id for n, a in apps.apps.items()}, insights.component.id,
                                st.account.id, cfg.location))
    http = topology.http.function
    return {
        "resource_group": rg.name,
        "storage_account": st.account.name,
        "upload_command": pulumi.Output.concat(
            "az storage blob upload --auth-mode login --account-name ", st.account.name,
            " --container-name data --name datasets/<model>/<file> --file <file>"),
        "inference_url": apps.apps[http].default_host_name.apply(
            # host.json sets routePrefix "": the routes are at the root, as on AWS and locally
            lambda h: f"https://{h}" if h else None),
        "function_apps": {n: a.name for n, a in apps.apps.items()},
    }


def main(topology: Topology) -> None:
    cfg = pulumi.Config()
    raw = {k: cfg.get(k) for k in ("namePrefix", "alarmEmail", "logRetentionDays",
                                   "azureAuthClientId", "azureOperatorPrincipalId",
                                   "azureConsoleSignIn")}
    raw["location"] = pulumi.Config("azure-native").get("location")
    client = authorization.get_client_config()
    raw["suffix"] = name_suffix(client.subscription_id, pulumi.get_project(), pulumi.get_stack())
    outputs = build(parse_azure_config(raw), topology, client.subscription_id, client.tenant_id,
                    client.object_id)
    for name, value in outputs.items():
        pulumi.export(name, value)
