"""Settings -> AWS adapters -> a Backend (called by mlops_kit.bootstrap.aws_backend)."""

from __future__ import annotations

from functools import partial

from mlops_kit.adapters.aws._clients import client
from mlops_kit.adapters.aws.notifier import SnsNotifier
from mlops_kit.adapters.aws.queue import SqsQueue
from mlops_kit.adapters.aws.store import PrefixRoutedStore, S3ObjectStore
from mlops_kit.adapters.aws.table import DynamoTable
from mlops_kit.bootstrap import Backend
from mlops_kit.core.context import Context
from mlops_kit.errors import MlopsKitError
from mlops_kit.ports import Clock
from mlops_kit.settings import Settings
from mlops_kit.topology import ARTIFACTS, DATA, ENV_FOR, Topology, default_topology

REQUIRED = {"data_bucket": "data_store", "artifact_bucket": "artifact_store",
            "table_name": "table", "validate_queue_url": "validate_queue",
            "train_queue_url": "train_queue", "topic_arn": "topic"}


class _NoNotifier:
    def publish(self, subject, message) -> None:  # no topic configured: alerts go to logs
        import logging

        logging.getLogger("mlops_kit.notify").warning("%s %s", subject, message)


def routed_store(settings: Settings, topology: Topology | None = None) -> PrefixRoutedStore:
    topology = topology or default_topology()
    s3 = partial(client, "s3", region=settings.region, endpoint_url=settings.endpoint_url)
    buckets = {DATA: S3ObjectStore(settings.data_bucket, s3),
               ARTIFACTS: S3ObjectStore(settings.artifact_bucket, s3)}
    return PrefixRoutedStore({p: buckets[st.name] for st in topology.stores for p in st.prefixes})


def build_aws_backend(settings: Settings, clock: Clock, topology: Topology | None = None) -> Backend:
    missing = [f for f in REQUIRED if f != "topic_arn" and not getattr(settings, f)]
    if missing:
        names = ", ".join(ENV_FOR[REQUIRED[f]] for f in missing)
        raise MlopsKitError(f"the aws backend needs {names} (set by the deployment or `emulate`)",
                            field=missing[0])
    topology = topology or default_topology()
    conn = {"region": settings.region, "endpoint_url": settings.endpoint_url}
    sqs, ddb, sns = (partial(client, name, **conn) for name in ("sqs", "dynamodb", "sns"))
    validate_q = SqsQueue(settings.validate_queue_url, sqs, name="validate")
    train_q = SqsQueue(settings.train_queue_url, sqs, name="train")
    notifier = SnsNotifier(settings.topic_arn, sns) if settings.topic_arn else _NoNotifier()
    ctx = Context(store=routed_store(settings, topology), table=DynamoTable(settings.table_name, ddb),
                  train_queue=train_q, notifier=notifier, clock=clock)
    return Backend(ctx, validate_q, settings)
