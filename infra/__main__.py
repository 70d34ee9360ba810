"""The Pulumi program: renders mlops_kit.topology on AWS, one component per concern.

Only this module reads configuration (pulumi.Config); components get typed args. Config is
validated up front (infra/config.py) so a bad key fails `pulumi preview` with every problem
listed, before anything is created. Pulumi.yaml declares the same keys (types, defaults,
descriptions) and the stack-wide `aws:defaultTags`; each component tags what it creates.

`pulumi preview` installs and builds nothing: the Lambda zips come from the cache `make package`
fills (or packageDir), and the training image is not built (docker-build skips the build on
preview; with trainImageUri nothing is built at all).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "src"):  # pulumi runs this file from infra/; make both importable
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pulumi  # noqa: E402

from infra import lambda_zips  # noqa: E402  (no provider SDK: stdlib only)
from infra.config import KEYS, OBJECT_KEYS, StackConfig, parse_config  # noqa: E402
from mlops_kit.topology import (  # noqa: E402
    ARTIFACTS,
    DATA,
    SCORE_JOB,
    Topology,
    default_topology,
    with_batch,
)

BUCKET_OUTPUTS = {DATA: "data_bucket", ARTIFACTS: "artifact_bucket"}
ZIP_CACHE = ROOT / "build" / "lambda"  # what `make package` fills


def _structured(value: str | None):
    """Objects set with --path arrive as JSON; a plain string (jwtAudience a,b) stays a string
    and parse_config reports anything it cannot use."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def read_config(topology: Topology) -> StackConfig:
    cfg, aws_cfg = pulumi.Config(), pulumi.Config("aws")
    raw = {key: _structured(cfg.get(key)) if key in OBJECT_KEYS else cfg.get(key) for key in KEYS}
    raw["region"] = aws_cfg.get("region")
    return parse_config(raw, [f.name for f in topology.functions])


def zip_artifacts(cfg: StackConfig, topology: Topology,
                  preview: bool | None = None) -> dict[str, lambda_zips.Artifact]:
    functions = lambda_zips.zip_functions(topology)
    if cfg.package_dir:  # prebuilt (make package): no pip during `pulumi up`
        base = Path(cfg.package_dir)
        base = base if base.is_absolute() else ROOT / base
        return {fn: lambda_zips.load_artifact(fn, base / f"{fn}.zip") for fn in functions}
    offline = pulumi.runtime.is_dry_run() if preview is None else preview
    artifacts = lambda_zips.build_all(ZIP_CACHE, functions, offline=offline)
    pulumi.log.info("lambda packages:\n" + lambda_zips.report(artifacts))
    return {a.function: a for a in artifacts}


def stack_topology(cfg: StackConfig) -> Topology:
    """The topology this stack renders: the schedule, and the batch job sized from config."""
    topology = default_topology(schedule=cfg.schedule)
    b = cfg.batch
    return with_batch(topology, vcpu=b.vcpu, memory_mb=b.memory_mb, attempts=b.attempts,
                      timeout_s=b.timeout_minutes * 60) if b.enabled else topology


def build(cfg: StackConfig, topology: Topology, zips: dict[str, lambda_zips.Artifact]) -> dict:
    """Create every resource; return the stack outputs."""
    # pulumi_aws only here: the Azure stack's install (mlops-kit[azure,azure-infra]) has none
    from infra.components import (
        AlertsTopic,
        AlertsTopicArgs,
        BatchTraining,
        BatchTrainingArgs,
        Functions,
        FunctionsArgs,
        InferenceApi,
        InferenceApiArgs,
        Monitoring,
        MonitoringArgs,
        Queues,
        QueuesArgs,
        RegistryTable,
        RegistryTableArgs,
        Storage,
        StorageArgs,
        TrainImage,
        TrainImageArgs,
    )

    p = cfg.name_prefix
    queues = Queues("queues", QueuesArgs(topology, p))
    storage = Storage("storage", StorageArgs(
        topology, p, queue_arns=queues.arns, queue_urls=queues.urls,
        sse_algorithm=cfg.sse_algorithm, protect=cfg.deletion_protection))
    table = RegistryTable("registry", RegistryTableArgs(
        topology.table, p, deletion_protection=cfg.deletion_protection))
    alerts = AlertsTopic("alerts", AlertsTopicArgs(topology, p, cfg.alarm_email))
    image = None
    if any(f.package == "image" for f in topology.functions):
        image = TrainImage("train-image", TrainImageArgs(
            p, image_uri=cfg.train_image_uri, force_delete=not cfg.deletion_protection))
    batch = None
    if topology.batch_jobs:  # batch.enabled: large datasets train on AWS Batch (issue 15)
        if image is None:
            raise ValueError("AWS Batch training runs the train image: the topology has no "
                             "image function to build it")
        train = topology.batch_jobs[0]
        batch = BatchTraining("batch", BatchTrainingArgs(
            topology, topology.batch_jobs, p, cfg.region, cfg.batch, image.image_uri,
            image.pull_repository_arn,
            {n: b.arn for n, b in storage.buckets.items()}, storage.bucket_names, table.arn,
            table.name, queues.arns, queues.urls, alerts.arn, alerts.key_arn,
            cfg.log_retention_days,
            cfg.memory.get(train.submitted_by,
                           topology.function(train.submitted_by).memory_mb)))
    functions = Functions("functions", FunctionsArgs(
        topology, p,
        bucket_arns={n: b.arn for n, b in storage.buckets.items()},
        bucket_names=storage.bucket_names, table_arn=table.arn, table_name=table.name,
        queue_arns=queues.arns, queue_urls=queues.urls, topic_arn=alerts.arn,
        topic_key_arn=alerts.key_arn, zips=zips, image_uri=image.image_uri if image else None,
        region=cfg.region, log_retention_days=cfg.log_retention_days, memory=cfg.memory,
        reserved_concurrency=cfg.reserved_concurrency, tracing=cfg.tracing,
        sse_algorithm=cfg.sse_algorithm, protect=cfg.deletion_protection,
        extra_env=batch.function_env if batch else {},
        batch_arns=batch.policy_arns if batch else {}))
    console = None
    if cfg.console_auth != "none":  # browsers sign in to /ui (infra/components/console_signin)
        from infra.components.console_signin import ConsoleSignInArgs

        console = ConsoleSignInArgs(
            p, cfg.console_auth, cfg.region, functions.code[topology.http.function],
            cfg.console_oidc_issuer, cfg.console_oidc_client_id, cfg.log_retention_days,
            protect=cfg.deletion_protection)
    api = InferenceApi("inference-api", InferenceApiArgs(
        topology.http, p, functions.functions[topology.http.function], cfg.auth_mode,
        cfg.jwt_issuer, cfg.jwt_audience, cfg.log_retention_days, cfg.throttle_rate_limit,
        cfg.throttle_burst_limit, detailed_metrics=cfg.detailed_api_metrics, console=console))
    monitoring = Monitoring("monitoring", MonitoringArgs(
        topology, p, cfg.region, functions.functions,
        {n: q.name for n, q in queues.queues.items()},
        {n: q.name for n, q in queues.dlqs.items()}, alerts.arn, api_id=api.api.id,
        latency_p99_ms=cfg.latency_p99_ms))

    data = storage.bucket_names[topology.store_for_prefix("datasets/")]
    outputs: dict[str, object] = {BUCKET_OUTPUTS.get(n, f"{n}_bucket"): b
                                  for n, b in storage.bucket_names.items()}
    outputs.update(
        upload_command=pulumi.Output.concat(
            "aws s3 cp <file> s3://", data, "/datasets/<model>/<file>"),
        inference_url=api.url,
        table_name=table.name,
        queue_urls=queues.urls,
        dlq_urls={n: q.url for n, q in queues.dlqs.items()},
        topic_arn=alerts.arn,
        function_names=functions.names,
        dashboard=monitoring.dashboard.dashboard_name,
    )
    if api.console is not None:
        outputs.update(console_url=pulumi.Output.concat(api.url, "/ui/login"),
                       console_cookie_key_parameter=api.console.parameter.name,
                       console_oidc_issuer=api.console.issuer)
        if api.console.user_pool_id is not None:
            outputs["console_user_pool_id"] = api.console.user_pool_id
    if image is not None:
        outputs["train_repository_url"] = image.repository.repository_url
    if batch is not None:
        outputs.update(batch_job_queue=batch.job_queue.arn,
                       batch_job_definition=batch.job_definition.name)
        if SCORE_JOB in batch.job_definitions:
            outputs["score_job_definition"] = batch.job_definitions[SCORE_JOB].name
    return outputs


def main() -> None:
    topology = default_topology()
    if pulumi.Config().get("cloud") == "azure":  # the same topology, rendered on Azure
        from infra import azure_stack

        schedule = pulumi.Config().get("schedule") or "rate(1 hour)"
        azure_stack.main(default_topology(schedule=schedule))
        return
    cfg = read_config(topology)
    topology = stack_topology(cfg)
    outputs = build(cfg, topology, zip_artifacts(cfg, topology))
    for name, value in outputs.items():
        pulumi.export(name, value)


if __name__ == "__main__":
    main()
