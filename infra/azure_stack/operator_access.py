"""The operator's data roles: with shared-key access off, Owner and Contributor carry no data
permissions (learn.microsoft.com/azure/storage/blobs/assign-azure-role-data-access), so without
these the stack's own `upload_command` (`az storage blob upload --auth-mode login`) and the
CLI's registry commands get 403. The operator is `azureOperatorPrincipalId` (a user, group or
service principal) or, by default, whoever runs `pulumi up`."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization

from infra.azure_stack.functions import role_id
from infra.azure_stack.rbac import ROLES

# (role, scope key): blobs in every container of the data account, the registry table
OPERATOR_ROLES = (("blob_contributor", "account"), ("table_contributor", "table"))


@dataclass
class OperatorArgs:
    principal_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    account_id: pulumi.Input[str]
    table_id: pulumi.Input[str]


class Operator(pulumi.ComponentResource):
    def __init__(self, name: str, args: OperatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops-kit:azure:Operator", name, None, opts)
        scopes = {"account": args.account_id, "table": args.table_id}
        self.assignments = [
            authorization.RoleAssignment(
                f"{name}-{role}", principal_id=args.principal_id, scope=scopes[scope],
                role_definition_id=role_id(args.subscription_id, ROLES[role]),
                opts=pulumi.ResourceOptions(parent=self))
            for role, scope in OPERATOR_ROLES]
        self.register_outputs({})
