"""Issue 25 "also": a fresh subscription has the stack's resource providers unregistered, and ARM
refuses the first resource of each with MissingSubscriptionRegistration
(https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/error-register-resource-provider).
docs/deploy-azure.md's `az provider register` loop must name every provider namespace the Azure
program's resources use, rendered under mocks, except the ones every subscription has registered
(https://learn.microsoft.com/azure/azure-resource-manager/management/resource-providers-and-types:
Microsoft.Resources and Microsoft.Authorization among them).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.azure_harness import run_azure
from tests.infra.test_azure_deploy_rules import OPERATOR, config

ROOT = Path(__file__).resolve().parents[2]
# pulumi-azure-native module -> the ARM resource provider namespace of its resource types
NAMESPACE = {
    "applicationinsights": "Microsoft.Insights",  # microsoft.insights/components
    "monitor": "Microsoft.Insights",  # actionGroups, metricAlerts, scheduledQueryRules
    "authorization": "Microsoft.Authorization",
    "eventgrid": "Microsoft.EventGrid",
    "managedidentity": "Microsoft.ManagedIdentity",
    "operationalinsights": "Microsoft.OperationalInsights",
    "resources": "Microsoft.Resources",
    "storage": "Microsoft.Storage",
    "web": "Microsoft.Web",
}
REGISTERED_BY_DEFAULT = {"Microsoft.Resources", "Microsoft.Authorization"}
# not a resource of the program: Application Insights creates its "Failure Anomalies" smart
# detector alert rule (microsoft.alertsmanagement/smartDetectorAlertRules) on its own
CREATED_BY_THE_PLATFORM = {"Microsoft.AlertsManagement"}


def documented() -> set[str]:
    text = (ROOT / "docs" / "deploy-azure.md").read_text()
    block = re.search(r"for ns in (.*?); do\s*\n\s*az provider register", text, re.S)
    assert block, "docs/deploy-azure.md has no `az provider register` loop"
    return set(re.findall(r"Microsoft\.\w+", block.group(1)))


def test_the_documented_registrations_cover_every_namespace_the_program_uses():
    used: set[str] = set()
    for graph in (run_azure(config()), run_azure(config(azureOperatorPrincipalId=OPERATOR,
                                                        azureConsoleSignIn="true"))):
        modules = {r.typ.split(":")[1] for r in graph.resources
                   if r.typ.startswith("azure-native:")}
        unknown = modules - set(NAMESPACE)
        assert not unknown, f"add the provider namespace of {unknown} to NAMESPACE (and the docs)"
        used |= {NAMESPACE[m] for m in modules}
    needed = used - REGISTERED_BY_DEFAULT
    docs = documented()
    assert needed <= docs, f"docs/deploy-azure.md does not register {needed - docs}"
    assert docs - needed <= CREATED_BY_THE_PLATFORM, f"registered but unused: {docs - needed}"
    assert {"Microsoft.Web", "Microsoft.Storage", "Microsoft.EventGrid"} <= needed
