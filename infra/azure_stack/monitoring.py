"""Application Insights on a Log Analytics workspace (Entra ID ingestion only), an action group
that emails the alarm address, and metric alerts: function errors (HTTP 5xx) per app, failed
requests and exceptions from Application Insights. The kit's own alerts (drift, quarantine,
training failures, dead letters) reach the same people: the notifier logs each one as
`MLOPSKIT_ALERT {json}`, the host sends it to Application Insights, and a scheduled query rule
fires once per subject seen in the last five minutes. A message moved to a `<queue>-poison` queue
has no metric alert (Azure Monitor's queue metrics are per storage account, not per queue):
the function's last attempt publishes a `dead_letter` alert itself (functions/azure)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, monitor, operationalinsights

TAGS = {"mlops-kit:component": "monitoring"}
# mlops_kit.adapters.azure.notifier.ALERT_MARKER (a test ties them; not imported: the program
# needs no Azure SDK)
ALERT_MARKER = "MLOPSKIT_ALERT "
ALERT_QUERY = (
    f'traces | where message startswith "{ALERT_MARKER}"'
    f" | extend alert = parse_json(substring(message, {len(ALERT_MARKER)}))"
    " | extend subject = tostring(alert.subject)"
    " | summarize alerts = count() by subject")


@dataclass
class InsightsArgs:
    prefix: str
    resource_group: pulumi.Input[str]
    location: str
    retention_days: int


class Insights(pulumi.ComponentResource):
    def __init__(self, name: str, args: InsightsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops-kit:azure:Insights", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = operationalinsights.Workspace(
            f"{name}-logs", resource_group_name=args.resource_group, location=args.location,
            retention_in_days=args.retention_days,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"), tags=TAGS, opts=child)
        self.component = applicationinsights.Component(
            f"{name}-insights", resource_name_=f"{args.prefix}-insights",
            resource_group_name=args.resource_group, location=args.location, kind="web",
            application_type="web", workspace_resource_id=self.workspace.id,
            disable_local_auth=True, ingestion_mode="LogAnalytics", tags=TAGS, opts=child)
        self.register_outputs({})


@dataclass
class AlertsArgs:
    prefix: str
    resource_group: pulumi.Input[str]
    alarm_email: str | None
    app_ids: dict[str, pulumi.Input[str]]
    insights_id: pulumi.Input[str]
    account_id: pulumi.Input[str]
    location: str = ""


def _alert(name: str, args: AlertsArgs, scope, metric: str, namespace: str, threshold: float,
           aggregation: str, description: str, actions, parent) -> monitor.MetricAlert:
    return monitor.MetricAlert(
        name, resource_group_name=args.resource_group, location="global", severity=2,
        enabled=True, scopes=[scope], evaluation_frequency="PT5M", window_size="PT15M",
        description=description, auto_mitigate=True,
        criteria=monitor.MetricAlertSingleResourceMultipleMetricCriteriaArgs(
            odata_type="Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
            all_of=[monitor.MetricCriteriaArgs(
                criterion_type="StaticThresholdCriterion", name=metric, metric_name=metric,
                metric_namespace=namespace, operator="GreaterThan", threshold=threshold,
                time_aggregation=aggregation)]),
        actions=actions, tags=TAGS, opts=pulumi.ResourceOptions(parent=parent))


class Alerts(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops-kit:azure:Alerts", name, None, opts)
        actions = []
        groups: list[pulumi.Input[str]] = []
        if args.alarm_email:
            group = monitor.ActionGroup(
                f"{name}-oncall", resource_group_name=args.resource_group, location="global",
                group_short_name="mlopskit", enabled=True,
                email_receivers=[monitor.MicrosoftCommonEmailReceiverArgs(
                    name="oncall", email_address=args.alarm_email, use_common_alert_schema=True)],
                tags=TAGS, opts=pulumi.ResourceOptions(parent=self))
            actions = [monitor.MetricAlertActionArgs(action_group_id=group.id)]
            groups = [group.id]
        self.alerts = [
            _alert(f"{name}-{fn}-5xx", args, app_id, "Http5xx", "Microsoft.Web/sites", 0, "Total",
                   f"{fn}: HTTP 5xx responses", actions, self)
            for fn, app_id in args.app_ids.items()]
        self.alerts.append(_alert(
            f"{name}-failed-requests", args, args.insights_id, "requests/failed",
            "microsoft.insights/components", 0, "Count", "failed function invocations",
            actions, self))
        self.alerts.append(_alert(
            f"{name}-exceptions", args, args.insights_id, "exceptions/count",
            "microsoft.insights/components", 0, "Count", "exceptions in any function",
            actions, self))
        # the kit's alerts (the `alerts` queue stays for programs): one email per subject
        self.kit_alerts = monitor.ScheduledQueryRule(
            f"{name}-kit-alerts", resource_group_name=args.resource_group,
            location=args.location, kind="LogAlert", enabled=True, severity=2,
            description="mlops-kit alerts (drift, quarantine, training failures, dead letters)",
            scopes=[args.insights_id], evaluation_frequency="PT5M", window_size="PT5M",
            auto_mitigate=False,
            criteria=monitor.ScheduledQueryRuleCriteriaArgs(all_of=[monitor.ConditionArgs(
                query=ALERT_QUERY, time_aggregation="Total", metric_measure_column="alerts",
                operator="GreaterThan", threshold=0,
                dimensions=[monitor.DimensionArgs(name="subject", operator="Include",
                                                  values=["*"])],
                failing_periods=monitor.ConditionFailingPeriodsArgs(
                    min_failing_periods_to_alert=1, number_of_evaluation_periods=1))]),
            actions=monitor.ActionsArgs(action_groups=groups),
            tags=TAGS, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
