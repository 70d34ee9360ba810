"""The Azure program under pulumi mocks: every resource recorded with its resolved inputs, and
computed attributes answered in the shapes azure-native returns (ARM ids, identity principal
and client ids, storage endpoints, the function app's default host name)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pulumi

from tests.infra.harness import Graph, Res

SUB = "00000000-0000-0000-0000-000000000001"
TENANT = "00000000-0000-0000-0000-0000000000aa"
LOCATION = "westeurope"

# type token -> ARM provider path of the resource id
_ARM = {
    "azure-native:resources:ResourceGroup": None,
    "azure-native:storage:StorageAccount": "Microsoft.Storage/storageAccounts",
    "azure-native:managedidentity:UserAssignedIdentity":
        "Microsoft.ManagedIdentity/userAssignedIdentities",
    "azure-native:web:WebApp": "Microsoft.Web/sites",
    "azure-native:web:AppServicePlan": "Microsoft.Web/serverfarms",
    "azure-native:eventgrid:SystemTopic": "Microsoft.EventGrid/systemTopics",
    "azure-native:applicationinsights:Component": "microsoft.insights/components",
    "azure-native:operationalinsights:Workspace": "Microsoft.OperationalInsights/workspaces",
}


class AzureMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Res] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs, typ, name = dict(args.inputs), args.typ, args.name
        state = dict(inputs)
        rg = f"/subscriptions/{SUB}/resourceGroups/mlk-rg"
        leaf = (inputs.get("accountName") or inputs.get("resourceName") or inputs.get("name")
                or name)
        rid = f"{rg}/providers/{_ARM.get(typ) or 'x'}/{leaf}"
        if typ == "azure-native:resources:ResourceGroup":
            rid = rg
            state["name"] = inputs.get("resourceGroupName", name)
        elif typ == "azure-native:storage:StorageAccount":
            acct = inputs["accountName"]
            state["name"] = acct
            state["primaryEndpoints"] = {
                "blob": f"https://{acct}.blob.core.windows.net/",
                "queue": f"https://{acct}.queue.core.windows.net/",
                "table": f"https://{acct}.table.core.windows.net/"}
        elif typ == "azure-native:storage:BlobContainer":
            rid = (f"{rg}/providers/Microsoft.Storage/storageAccounts/{inputs['accountName']}"
                   f"/blobServices/default/containers/{inputs['containerName']}")
        elif typ == "azure-native:storage:Queue":
            rid = (f"{rg}/providers/Microsoft.Storage/storageAccounts/{inputs['accountName']}"
                   f"/queueServices/default/queues/{inputs['queueName']}")
        elif typ == "azure-native:storage:Table":
            rid = (f"{rg}/providers/Microsoft.Storage/storageAccounts/{inputs['accountName']}"
                   f"/tableServices/default/tables/{inputs['tableName']}")
        elif typ == "azure-native:managedidentity:UserAssignedIdentity":
            state["principalId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, name + "/p"))
            state["clientId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, name + "/c"))
            state["tenantId"] = TENANT
        elif typ == "azure-native:eventgrid:SystemTopic":
            state["identity"] = {"type": "SystemAssigned",
                                 "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                                 "tenantId": TENANT}
        elif typ == "azure-native:web:WebApp":
            state["defaultHostName"] = f"{inputs.get('name', name)}.azurewebsites.net"
            ident = dict(inputs.get("identity") or {})
            # the provider answers the identities as a map: resource id -> principal/client ids
            ident["userAssignedIdentities"] = {
                i: {"principalId": "p", "clientId": "c"}
                for i in ident.get("userAssignedIdentities") or []}
            state["identity"] = ident
        elif typ == "azure-native:applicationinsights:Component":
            state["connectionString"] = ("InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                         "IngestionEndpoint=https://westeurope.in.applicationinsights.azure.com/")
        state.setdefault("name", leaf)
        self.resources.append(Res(typ, name, inputs, state))
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "azure-native:authorization:getClientConfig":
            return {"clientId": "cli", "objectId": "obj", "subscriptionId": SUB,
                    "tenantId": TENANT}, []
        raise AssertionError(f"unexpected invoke {args.token}")


@dataclass
class AzureGraph(Graph):
    outputs: dict[str, Any] = field(default_factory=dict)


def run_azure(config: dict[str, str], stack: str = "azure") -> Graph:
    """The program's main() under mocks; the graph's outputs are the stack's exports."""
    import json
    import os

    from infra import __main__ as program

    mocks = AzureMocks()
    outputs: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    old = os.environ.get("PULUMI_CONFIG")
    os.environ["PULUMI_CONFIG"] = json.dumps(config)
    pulumi.runtime.set_mocks(mocks, project="mlops-kit", stack=stack, preview=False)
    exported: dict[str, Any] = {}
    export = pulumi.export
    try:
        @pulumi.runtime.test
        def run():
            program.main()
            keys = list(exported)
            return pulumi.Output.all(*exported.values()).apply(
                lambda values: outputs.update(zip(keys, values, strict=True)))

        pulumi.export = exported.__setitem__  # type: ignore[assignment]
        run()
    finally:
        pulumi.export = export
        if old is None:
            os.environ.pop("PULUMI_CONFIG", None)
        else:
            os.environ["PULUMI_CONFIG"] = old
        loop.close()
        asyncio.set_event_loop(None)
    return Graph(mocks.resources, outputs)
