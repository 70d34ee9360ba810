"""BlobCreated -> the validate queue: an Event Grid system topic on the storage account and one
subscription per upload prefix (datasets/, labels/), delivered to the storage queue with the
topic's managed identity (no keys). This mirrors S3 -> SQS on AWS."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, eventgrid

from infra.azure_stack.rbac import ROLES
from mlops_kit.topology import Topology


@dataclass
class BlobEventsArgs:
    topology: Topology
    resource_group: pulumi.Input[str]
    location: str
    account_id: pulumi.Input[str]
    queue_ids: dict[str, pulumi.Input[str]]
    subscription_id: pulumi.Input[str]


class BlobEvents(pulumi.ComponentResource):
    def __init__(self, name: str, args: BlobEventsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops-kit:azure:BlobEvents", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = eventgrid.SystemTopic(
            f"{name}-topic", resource_group_name=args.resource_group, location=args.location,
            source=args.account_id, topic_type="Microsoft.Storage.StorageAccounts",
            identity=eventgrid.IdentityInfoArgs(type="SystemAssigned"),
            tags={"mlops-kit:component": "events"}, opts=child)
        principal = self.topic.identity.apply(lambda i: i.principal_id if i else None)
        self.subscriptions = []
        senders = {}
        for trig in args.topology.object_triggers:
            queue_id = args.queue_ids[trig.queue]
            if trig.queue not in senders:  # the topic may only send to this queue
                senders[trig.queue] = authorization.RoleAssignment(
                    f"{name}-send-{trig.queue}", principal_id=principal,
                    principal_type="ServicePrincipal", scope=queue_id,
                    role_definition_id=pulumi.Output.concat(
                        "/subscriptions/", args.subscription_id,
                        "/providers/Microsoft.Authorization/roleDefinitions/",
                        ROLES["queue_sender"]), opts=child)
            prefix = trig.prefix.rstrip("/")
            self.subscriptions.append(eventgrid.SystemTopicEventSubscription(
                f"{name}-{trig.store}-{prefix}", resource_group_name=args.resource_group,
                system_topic_name=self.topic.name, event_subscription_name=f"{trig.store}-{prefix}",
                filter=eventgrid.EventSubscriptionFilterArgs(
                    included_event_types=["Microsoft.Storage.BlobCreated"],
                    subject_begins_with=(f"/blobServices/default/containers/{trig.store}"
                                         f"/blobs/{trig.prefix}")),
                delivery_with_resource_identity=eventgrid.DeliveryWithResourceIdentityArgs(
                    identity=eventgrid.EventSubscriptionIdentityArgs(type="SystemAssigned"),
                    destination=eventgrid.StorageQueueEventSubscriptionDestinationArgs(
                        endpoint_type="StorageQueue", resource_id=args.account_id,
                        queue_name=trig.queue, queue_message_time_to_live_in_seconds=-1)),
                retry_policy=eventgrid.RetryPolicyArgs(max_delivery_attempts=30,
                                                       event_time_to_live_in_minutes=1440),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[senders[trig.queue]])))
        self.register_outputs({})
