"""The registry table: DynamoDB, on-demand, point-in-time recovery, encrypted at rest."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.tags import component_tags
from mlops_kit.topology import Table


@dataclass
class RegistryTableArgs:
    table: Table
    name_prefix: str
    deletion_protection: bool = True


class RegistryTable(pulumi.ComponentResource):
    def __init__(self, name: str, args: RegistryTableArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:table:RegistryTable", name, None, opts)
        t = args.table
        self.table = aws.dynamodb.Table(
            f"{args.name_prefix}-{t.name}",
            billing_mode="PAY_PER_REQUEST",
            hash_key=t.partition_key, range_key=t.sort_key,
            attributes=[{"name": t.partition_key, "type": "S"},
                        {"name": t.sort_key, "type": "S"}],
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True},  # KMS (AWS-managed key), not the default
            deletion_protection_enabled=args.deletion_protection,
            tags=component_tags("table"),
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection))
        self.name = self.table.name
        self.arn = self.table.arn
        self.register_outputs({"name": self.table.name, "arn": self.table.arn})
