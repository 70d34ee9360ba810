"""The storage account and everything in it: two containers (data, artifacts), the queues with
their poison queues, the alerts queue and the registry table.

Security by default: shared-key (account key and SAS) access off, so only Entra ID identities
with RBAC reach the data; TLS 1.2 minimum, HTTPS only; no public blob access; Microsoft-managed
encryption at rest (always on); blob versioning and soft delete for blobs and containers."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import storage

from mlops_kit.topology import Topology

COMPONENT_TAG = "mlops-kit:component"


@dataclass
class AzureStorageArgs:
    topology: Topology
    account_name: str
    resource_group: pulumi.Input[str]
    location: str
    soft_delete_days: int = 7


class AzureStorage(pulumi.ComponentResource):
    def __init__(self, name: str, args: AzureStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops-kit:azure:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {COMPONENT_TAG: "storage"}
        t, rg = args.topology, args.resource_group
        self.account = storage.StorageAccount(
            f"{name}-account", account_name=args.account_name, resource_group_name=rg,
            location=args.location, kind="StorageV2", sku=storage.SkuArgs(name="Standard_ZRS"),
            allow_shared_key_access=False, allow_blob_public_access=False,
            minimum_tls_version="TLS1_2", enable_https_traffic_only=True,
            default_to_o_auth_authentication=True, allow_cross_tenant_replication=False,
            public_network_access="Enabled", tags=tags, opts=child)
        account = self.account.name
        self.blob_service = storage.BlobServiceProperties(
            f"{name}-blob-service", account_name=account, resource_group_name=rg,
            blob_services_name="default", is_versioning_enabled=True,
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True, days=args.soft_delete_days),
            container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True, days=args.soft_delete_days), opts=child)
        self.containers = {
            st.name: storage.BlobContainer(
                f"{name}-{st.name}", account_name=account, resource_group_name=rg,
                container_name=st.name, public_access=storage.PublicAccess.NONE,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]))
            for st in t.stores}
        queue_names = [q.name for q in t.queues] + [f"{q.name}-poison" for q in t.queues] + [t.topic]
        self.queues = {
            q: storage.Queue(f"{name}-q-{q}", account_name=account, resource_group_name=rg,
                             queue_name=q, opts=child)
            for q in queue_names}
        self.table = storage.Table(f"{name}-table", account_name=account, resource_group_name=rg,
                                   table_name=t.table.name, opts=child)
        self.deployments = storage.BlobContainer(
            f"{name}-deployments", account_name=account, resource_group_name=rg,
            container_name="deployments", public_access=storage.PublicAccess.NONE,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]))
        self.register_outputs({"account": account})
