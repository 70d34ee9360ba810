"""One Flex Consumption (FC1, Linux) function app per topology function, each with its own
user-assigned managed identity holding only that function's role assignments (rbac.grants):
the same isolation a Lambda function's role gives on AWS. All apps run the same package
(functions/azure); MLOPSKIT_FUNCTION names the one whose triggers an app registers.

No secrets in app settings: storage is reached with the identity (`__credential` /
`__clientId` settings), the host's own storage is a separate account, and Application Insights
takes Entra ID auth (local auth off)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, managedidentity, storage, web

from infra.azure_stack.config import flex_memory_mb
from infra.azure_stack.rbac import ROLES, Grant
from mlops_kit.topology import Topology

HOST_BLOB_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"  # Storage Blob Data Owner (host leases)


@dataclass
class FunctionAppsArgs:
    topology: Topology
    prefix: str
    resource_group: pulumi.Input[str]
    location: str
    subscription_id: pulumi.Input[str]
    account_name: pulumi.Input[str]
    scopes: dict[tuple[str, str], pulumi.Input[str]]  # (kind, target) -> resource id
    grants: list[Grant]
    insights_connection: pulumi.Input[str]
    python_version: str = "3.11"
    instance_memory_mb: int = 2048
    maximum_instance_count: int = 40
    tenant_id: pulumi.Input[str] = ""
    auth_client_id: str = ""
    console_sign_in: bool = False  # browsers get the Entra ID login page (the console, /ui)
    host_account: str = ""  # the Functions host's storage account (globally unique name)
    site_names: dict[str, str] | None = None  # function -> app name (<name>.azurewebsites.net)


def role_id(subscription_id: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    return pulumi.Output.concat("/subscriptions/", subscription_id,
                                "/providers/Microsoft.Authorization/roleDefinitions/", role)


class FunctionApps(pulumi.ComponentResource):
    def __init__(self, name: str, args: FunctionAppsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops-kit:azure:FunctionApps", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        rg, t = args.resource_group, args.topology
        tags = {"mlops-kit:component": "functions"}
        # The Functions host's own storage (leases, deployment packages): never the data.
        self.host = storage.StorageAccount(
            f"{name}-host", account_name=args.host_account or f"{args.prefix}host", resource_group_name=rg,
            location=args.location, kind="StorageV2", sku=storage.SkuArgs(name="Standard_LRS"),
            allow_shared_key_access=False, allow_blob_public_access=False,
            minimum_tls_version="TLS1_2", enable_https_traffic_only=True, tags=tags, opts=child)
        self.identities: dict[str, managedidentity.UserAssignedIdentity] = {}
        self.apps: dict[str, web.WebApp] = {}
        self.assignments: list[authorization.RoleAssignment] = []
        blob_endpoint = self.host.primary_endpoints.apply(lambda e: e.blob)
        for fn in t.functions:
            ident = managedidentity.UserAssignedIdentity(
                f"{name}-{fn.name}-id", resource_name_=f"{args.prefix}-{fn.name}",
                resource_group_name=rg, location=args.location, tags=tags, opts=child)
            self.identities[fn.name] = ident
            for g in (g for g in args.grants if g.function == fn.name):
                self.assignments.append(authorization.RoleAssignment(
                    f"{name}-{fn.name}-{g.kind}-{g.target}-{g.role}", principal_id=ident.principal_id,
                    principal_type="ServicePrincipal", scope=args.scopes[(g.kind, g.target)],
                    role_definition_id=role_id(args.subscription_id, ROLES[g.role]),
                    condition=g.condition, condition_version="2.0" if g.condition else None,
                    opts=child))
            host_owner = authorization.RoleAssignment(
                f"{name}-{fn.name}-host", principal_id=ident.principal_id,
                principal_type="ServicePrincipal", scope=self.host.id,
                role_definition_id=role_id(args.subscription_id, HOST_BLOB_OWNER), opts=child)
            deployments = storage.BlobContainer(
                f"{name}-{fn.name}-pkg", account_name=self.host.name, resource_group_name=rg,
                container_name=f"deploy-{fn.name}", public_access=storage.PublicAccess.NONE,
                opts=child)
            plan = web.AppServicePlan(
                f"{name}-{fn.name}-plan", resource_group_name=rg, location=args.location,
                kind="functionapp", reserved=True,
                sku=web.SkuDescriptionArgs(name="FC1", tier="FlexConsumption"), tags=tags,
                opts=child)
            settings = {
                "MLOPSKIT_BACKEND": "azure",
                "MLOPSKIT_FUNCTION": fn.name,
                "MLOPSKIT_AZURE_STORAGE_ACCOUNT": args.account_name,
                "MLOPSKIT_AZURE_CLIENT_ID": ident.client_id,
                "MLOPSKIT_QUEUES__queueServiceUri": pulumi.Output.concat(
                    "https://", args.account_name, ".queue.core.windows.net"),
                "MLOPSKIT_QUEUES__credential": "managedidentity",
                "MLOPSKIT_QUEUES__clientId": ident.client_id,
                "AzureWebJobsStorage__accountName": self.host.name,
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": ident.client_id,
                "APPLICATIONINSIGHTS_CONNECTION_STRING": args.insights_connection,
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": pulumi.Output.concat(
                    "Authorization=AAD;ClientId=", ident.client_id),
            }
            self.apps[fn.name] = web.WebApp(
                f"{name}-{fn.name}",
                name=(args.site_names or {}).get(fn.name, f"{args.prefix}-{fn.name}"),
                resource_group_name=rg,
                location=args.location, kind="functionapp,linux", server_farm_id=plan.id,
                https_only=True, client_cert_enabled=False,
                identity=web.ManagedServiceIdentityArgs(
                    type=web.ManagedServiceIdentityType.USER_ASSIGNED,
                    user_assigned_identities=[ident.id]),
                function_app_config=web.FunctionAppConfigArgs(
                    deployment=web.FunctionsDeploymentArgs(storage=web.FunctionsDeploymentStorageArgs(
                        type="blobContainer",
                        value=pulumi.Output.concat(blob_endpoint, f"deploy-{fn.name}"),
                        authentication=web.FunctionsDeploymentStorageAuthenticationArgs(
                            type="UserAssignedIdentity", user_assigned_identity_resource_id=ident.id))),
                    runtime=web.FunctionsRuntimeArgs(name="python", version=args.python_version),
                    scale_and_concurrency=web.FunctionsScaleAndConcurrencyArgs(
                        instance_memory_mb=flex_memory_mb(
                            fn.name, max(args.instance_memory_mb, fn.memory_mb)),
                        maximum_instance_count=args.maximum_instance_count)),
                site_config=web.SiteConfigArgs(
                    min_tls_version="1.2", ftps_state="Disabled", http20_enabled=True,
                    app_settings=[web.NameValuePairArgs(name=k, value=v)
                                  for k, v in settings.items()]),
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[host_owner, deployments]))
        # Inference is authenticated before the code runs: App Service authentication (Entra ID)
        # validates the caller's bearer token; the serve function also refuses any request
        # without the principal header only the platform sets (functions/azure).
        http = t.http.function
        self.auth = web.WebAppAuthSettingsV2(
            f"{name}-{http}-auth", name=self.apps[http].name, resource_group_name=rg,
            platform=web.AuthPlatformArgs(enabled=True),
            # With console sign-in a browser without a session is sent to the Entra ID login
            # page (implicit id_token flow: no client secret; the registration needs the
            # /.auth/login/aad/callback redirect URI and ID tokens, docs/deploy-azure.md) and
            # comes back with a session cookie the platform turns into the same principal
            # headers a bearer token gives; XHR requests still get 401.
            global_validation=web.GlobalValidationArgs(
                require_authentication=True,
                unauthenticated_client_action=(
                    web.UnauthenticatedClientActionV2.REDIRECT_TO_LOGIN_PAGE
                    if args.console_sign_in else web.UnauthenticatedClientActionV2.RETURN401),
                redirect_to_provider="azureactivedirectory" if args.console_sign_in else None),
            identity_providers=web.IdentityProvidersArgs(
                azure_active_directory=web.AzureActiveDirectoryArgs(
                    enabled=True,
                    registration=web.AzureActiveDirectoryRegistrationArgs(
                        client_id=args.auth_client_id,
                        open_id_issuer=pulumi.Output.concat(
                            "https://login.microsoftonline.com/", args.tenant_id, "/v2.0")),
                    validation=web.AzureActiveDirectoryValidationArgs(
                        allowed_audiences=[f"api://{args.auth_client_id}",
                                           args.auth_client_id]))),
            opts=child)
        self.register_outputs({})
