"""Settings -> the AWS adapters (S3 routed by prefix to two buckets, SQS, DynamoDB, SNS)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from mlops_kit.adapters.aws._clients import client
from mlops_kit.adapters.aws.notifier import SnsNotifier
from mlops_kit.adapters.aws.queue import SqsQueue
from mlops_kit.adapters.aws.store import PrefixRoutedStore, S3ObjectStore
from mlops_kit.adapters.aws.table import DynamoTable
from mlops_kit.errors import ConfigError
from mlops_kit.ports import Adapters, JobRunner
from mlops_kit.topology import (
    ARTIFACTS,
    DATA,
    ENV_FOR,
    SCORE_JOB,
    TRAIN_JOB,
    Topology,
    default_topology,
    with_batch,
)

if TYPE_CHECKING:  # the serve function builds its backend from light_settings (no pydantic)
    from mlops_kit.settings import Settings

REQUIRED = {"data_bucket": "data_store", "artifact_bucket": "artifact_store",
            "table_name": "table", "validate_queue_url": "validate_queue",
            "train_queue_url": "train_queue", "topic_arn": "topic"}


class _NoNotifier:
    def publish(self, subject, message) -> None:  # no topic configured: alerts go to logs
        import logging

        logging.getLogger("mlops_kit.notify").warning("%s %s", subject, message)


def routed_store(settings: Settings, topology: Topology | None = None) -> PrefixRoutedStore:
    topology = topology or default_topology()
    if not (settings.data_bucket and settings.artifact_bucket):
        raise ConfigError(f"the aws backend needs {ENV_FOR['data_store']} and "
                          f"{ENV_FOR['artifact_store']}", field="data_bucket")
    s3 = partial(client, "s3", region=settings.region, endpoint_url=settings.endpoint_url)
    buckets = {DATA: S3ObjectStore(settings.data_bucket, s3),
               ARTIFACTS: S3ObjectStore(settings.artifact_bucket, s3)}
    return PrefixRoutedStore({p: buckets[st.name] for st in topology.stores for p in st.prefixes})


def build(settings: Settings, topology: Topology) -> Adapters:
    missing = [f for f in REQUIRED if f != "topic_arn" and not getattr(settings, f)]
    if missing:
        names = ", ".join(ENV_FOR[REQUIRED[f]] for f in missing)
        raise ConfigError(f"the aws backend needs {names} (set by the deployment or `emulate`)",
                            field=missing[0])
    if not settings.region:
        import boto3  # the region may come from AWS_REGION, AWS_DEFAULT_REGION or a profile

        if not boto3.session.Session().region_name:
            raise ConfigError("the aws backend needs a region: set MLOPSKIT_REGION (or "
                              "AWS_REGION, or a region in the AWS profile)", field="region")
    assert settings.table_name and settings.validate_queue_url and settings.train_queue_url
    conn = {"region": settings.region, "endpoint_url": settings.endpoint_url}
    sqs, ddb, sns = (partial(client, name, **conn) for name in ("sqs", "dynamodb", "sns"))
    return Adapters(
        store=routed_store(settings, topology),
        table=DynamoTable(settings.table_name, ddb),
        validate_queue=SqsQueue(settings.validate_queue_url, sqs, name="validate"),
        train_queue=SqsQueue(settings.train_queue_url, sqs, name="train"),
        notifier=SnsNotifier(settings.topic_arn, sns) if settings.topic_arn else _NoNotifier(),
        jobs=job_runner(settings, topology),
        scoring_jobs=job_runner(settings, topology, scoring=True),
    )


def job_runner(settings: Settings, topology: Topology, *,
               scoring: bool = False) -> JobRunner | None:
    """The batch engine: AWS Batch when the deployment configured it, else none (train and
    score in the functions). `scoring`: the scoring job's definition (the same job queue; its
    own role and grants), which validate submits to; else training's. A separate process
    instead (MLOPSKIT_JOB_RUNNER=process, and `emulate`'s stand-in for Batch) is the
    composition root's choice (bootstrap.job_runner): no production adapter imports another
    backend's."""
    if settings.job_runner in ("none", "process") or not settings.batch_job_queue:
        return None
    field = "score_job_definition" if scoring else "batch_job_definition"
    definition = getattr(settings, field)
    if not definition:
        # scoring: a deployment from before the scoring job (scoring stays on functions);
        # training: the validate function, which gets the queue for scoring's definition only
        if scoring or settings.score_job_definition:
            return None
        raise ConfigError(f"{ENV_FOR['batch_job_queue']} is set without {ENV_FOR[field]}",
                          field=field)
    from mlops_kit.adapters.aws.batch import BatchRunner

    jobs = {j.name: j for j in topology.batch_jobs or with_batch(topology).batch_jobs}
    job = jobs[SCORE_JOB if scoring else TRAIN_JOB]
    # the attempts and timeout settings are training's (infra sets them from its config);
    # the scoring job's are its definition's (topology.scoring_job)
    return BatchRunner(settings.batch_job_queue, definition,
                       partial(client, "batch", region=settings.region,
                               endpoint_url=settings.endpoint_url),
                       job, attempts=None if scoring else settings.batch_attempts,
                       timeout_s=None if scoring else settings.batch_timeout_s)
