"""The rendered role policies against what each function's code calls, as a table.

CALLS lists every AWS call each function makes (boto3 operations of src/mlops_kit/adapters/aws
as the handlers in functions/ drive them through core, plus what Lambda does with the role:
the SQS event source mapping and the log group), each with the line of code that makes it.
Every call must be allowed by the policy the Pulumi program rendered, evaluated as IAM does
(tests/infra/iam_eval.py), and every grant in the policy must serve some call in the table: no
more and no less than the code calls. FORBIDDEN lists calls a function must never manage.

Keep CALLS in step with the code: a new boto3 call in a handler path is a new row here (and,
if it is refused, a new grant in mlops_kit.topology).
"""

from __future__ import annotations

import json

import pytest

from mlops_kit.topology import default_topology
from tests.infra.harness import ACCOUNT, REGION, Graph
from tests.infra.iam_eval import allows, grants, matches

TOPO = default_topology()
P = "mlk-test"
M = "churn"  # any model name
V = "000003"  # any version prefix

# (service, operation, target, where in the code). Targets: "data:<key>" / "artifacts:<key>"
# for objects (a "->" joins a copy's source and destination), "list:<store>:<prefix>",
# "table", "queue:<name>", "topic", "logs".
Call = tuple[str, str, str, str]
ESM = "Lambda's SQS event source mapping (the consumer's role)"
RUNTIME = "Lambda runtime: logs to the function's own log group"
SPEC = f"data:specs/{M}.yaml"
NO_SPEC = f"data:specs/{M}.yml"  # load_spec probes .yaml, .yml, .json in turn
# ObjectStore.exists on S3 is a one-key listing with the key as prefix (S3ObjectStore.exists)
PROBE_SPEC, PROBE_NO_SPEC = f"list:data:specs/{M}.yaml", f"list:data:specs/{M}.yml"
LOGS: list[Call] = [("logs", "CreateLogStream", "logs", RUNTIME),
                    ("logs", "PutLogEvents", "logs", RUNTIME)]


def _consumer(queue: str) -> list[Call]:
    return [("sqs", op, f"queue:{queue}", ESM)
            for op in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")]


def _publish(where: str) -> list[Call]:
    return [("sns", "Publish", "topic", where)]


CALLS: dict[str, list[Call]] = {
    "validate": LOGS + _consumer("validate") + _publish("validate_upload / ingest_labels") + [
        ("s3", "HeadObject", f"data:datasets/{M}/upload.csv", "validate_upload: ctx.store.head(key)"),
        ("dynamodb", "GetItem", "table", "validate_upload: idempotency marker"),
        ("s3", "ListObjectsV2", PROBE_SPEC, "load_spec: store.exists(specs/<model>.yaml)"),
        ("s3", "ListObjectsV2", PROBE_NO_SPEC, "load_spec: exists() of a spec name not there"),
        ("s3", "GetObject", SPEC, "load_spec: store.get(key)"),
        ("s3", "GetObject", f"data:datasets/{M}/upload.csv", "validate_upload: store.open(key)"),
        ("s3", "PutObject", f"artifacts:reports/{M}/validation/upload.csv.20240101T000000.ab.json",
         "validate_upload: the validation report"),
        ("s3", "PutObject",
         f"artifacts:reports/{M}/validation/upload.csv.20240101T000000.ab.profile.json",
         "validate_upload: the dataset profile (passed)"),
        ("sqs", "SendMessage", "queue:train", "validate_upload: ctx.train_queue.send(job)"),
        ("s3", "HeadObject", f"data:datasets/{M}/bad.csv", "S3ObjectStore.copy_from: source.head"),
        ("s3", "CopyObject", f"data:datasets/{M}/bad.csv->quarantine/{M}/bad.csv",
         "validate_upload: store.copy(key, quarantine key)"),
        ("s3", "HeadObject", f"data:quarantine/{M}/bad.csv",
         "S3ObjectStore.copy_from: self.head(dst), the copy read back (issue 13, B2)"),
        ("s3", "CreateMultipartUpload", f"data:quarantine/{M}/big.csv", "s3.copy over 5 GB"),
        ("s3", "UploadPartCopy", f"data:datasets/{M}/big.csv->quarantine/{M}/big.csv",
         "s3.copy over 5 GB"),
        ("s3", "CompleteMultipartUpload", f"data:quarantine/{M}/big.csv", "s3.copy over 5 GB"),
        ("s3", "AbortMultipartUpload", f"data:quarantine/{M}/big.csv", "a failed s3.copy"),
        ("s3", "PutObject", f"data:quarantine/{M}/bad.csv.report.json",
         "validate_upload: the quarantine report"),
        ("dynamodb", "PutItem", "table", "validate_upload: the idempotency marker, last"),
        ("s3", "GetObject", f"data:labels/{M}/labels-1.csv", "ingest_labels: store.open(key)"),
        ("s3", "ListObjectsV2", f"list:data:datasets/{M}/gone.csv",
         "S3ObjectStore.head/open of an upload deleted since: S3's 403 -> list the one key -> "
         "NotFound (a final failure, not a retried denial)"),
        ("s3", "ListObjectsV2", f"list:data:labels/{M}/gone.csv", "the same for a labels file"),
        ("s3", "HeadObject", f"data:labels/{M}/bad.csv", "labels._quarantine: copy source.head"),
        ("s3", "CopyObject", f"data:labels/{M}/bad.csv->quarantine/{M}/labels/bad.csv",
         "labels._quarantine: a bad labels file's copy (issue 12)"),
        ("s3", "HeadObject", f"data:quarantine/{M}/labels/bad.csv",
         "S3ObjectStore.copy_from: the copy read back"),
        ("s3", "PutObject", f"data:quarantine/{M}/labels/bad.csv.report.json",
         "labels._quarantine: its report"),
        # batch scoring (core/scoring/usecase.py): a scoring/ upload, its options, the model
        ("s3", "HeadObject", f"data:scoring/{M}/nightly.csv", "score_upload: store.head(key)"),
        ("s3", "ListObjectsV2", f"list:data:scoring/{M}/nightly.json",
         "score_upload: exists(options)"),
        ("s3", "GetObject", f"data:scoring/{M}/nightly.json", "score_upload: the options"),
        ("s3", "GetObject", f"data:scoring/{M}/nightly.csv", "score_upload: store.open(key)"),
        ("dynamodb", "GetItem", "table", "score_upload: Registry.get_alias / get_version"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/spec.json", "ModelService.load_version"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/model.onnx", "ModelService.load_version"),
        ("s3", "ListObjectsV2", f"list:data:predictions/{M}/nightly/_manifest.json",
         "score_upload: exists(manifest), a redelivery"),
        ("s3", "GetObject", f"data:predictions/{M}/nightly/_manifest.json",
         "score_upload: the manifest of a redelivery"),
        *[("s3", "PutObject", f"data:predictions/{M}/nightly/{name}", "score_upload: output")
          for name in ("part-00000.parquet", "rejects.parquet", "_manifest.json")],
        # ... fanned out past scoring_chunk_bytes (core/scoring/fanout.py): ranged GETs of
        # scoring/ (s3:GetObject, as above), one message per chunk on validate's own queue,
        # each chunk counted in the table, the finisher reading each chunk back (no Query)
        ("sqs", "SendMessage", "queue:validate", "fanout.fan_out: one message per chunk"),
        ("dynamodb", "TransactWriteItems:Put", "table",
         "ScoringJobs.record_chunk: the chunk + the job's counter, conditional"),
        ("dynamodb", "PutItem", "table", "ScoringJobs.start / update / finish"),
        ("dynamodb", "GetItem", "table", "ScoringJobs.chunks: the finisher reads each chunk"),
        ("s3", "PutObject", f"data:predictions/{M}/nightly/part-03000.parquet",
         "score_chunk: chunk 3's first part"),
        ("s3", "PutObject", f"data:predictions/{M}/nightly/_rejects/chunk-00003.parquet",
         "score_chunk: chunk 3's rejected rows"),
        ("s3", "GetObject", f"data:predictions/{M}/nightly/_rejects/chunk-00003.parquet",
         "fanout._merge_rejects: read back into rejects.parquet"),
        ("s3", "PutObject", f"artifacts:captures/{M}/2024-01-01/10/20240101T100000-ab12.cap",
         "score_upload / score_chunk with {\"capture\": true}: CaptureBuffer.flush"),
        ("s3", "HeadObject", f"data:scoring/{M}/bad.csv", "score_upload: copy source.head"),
        ("s3", "CopyObject", f"data:scoring/{M}/bad.csv->quarantine/{M}/scoring-bad.csv",
         "score_upload: an unreadable file's copy"),
        ("s3", "HeadObject", f"data:quarantine/{M}/scoring-bad.csv", "copy read back"),
        ("s3", "PutObject", f"data:quarantine/{M}/scoring-bad.csv.report.json",
         "score_upload: its report"),
        ("s3", "HeadObject", f"data:labels/{M}/labels-1.csv", "ingest_labels: its etag"),
        ("s3", "ListObjectsV2", f"list:data:labels/{M}/",
         "label_checks.conflicts: the earlier labels files (issue 23)"),
        ("s3", "PutObject", f"artifacts:reports/{M}/labels/labels-1.csv.abcdef12.json",
         "ingest_labels: the report of relabelled ids"),
    ],
    "train": LOGS + _consumer("train") + _publish("train_job: trained / promoted") + [
        ("s3", "ListObjectsV2", PROBE_SPEC, "load_spec: store.exists"),
        ("s3", "ListObjectsV2", PROBE_NO_SPEC, "load_spec: store.exists"),
        ("s3", "GetObject", SPEC, "load_spec"),
        ("dynamodb", "GetItem", "table", "Registry.reserve_version: RUN#, META"),
        ("sqs", "SendMessage", "queue:train",
         "experiment._fan_out: one train-queue message per trial (a search on AWS)"),
        ("dynamodb", "TransactWriteItems:Put", "table",
         "reserve_version / complete_version / promote (Puts only, each with the SUMMARY)"),
        ("dynamodb", "PutItem", "table",
         "Registry.commit: the model index row (mark, then the summary's copy)"),
        ("dynamodb", "Query", "table", "Registry.history (_resume_promotion); "
         "Registry.commit: the rows a model's first SUMMARY is computed from"),
        ("s3", "GetObject", f"data:datasets/{M}/upload.csv", "train_job: store.open(dataset)"),
        ("s3", "ListObjectsV2", f"list:data:datasets/{M}/gone.csv",
         "S3ObjectStore.open of a dataset deleted since: 403 -> one-key listing -> NotFound"),
        ("s3", "GetObject",
         f"artifacts:reports/{M}/validation/upload.csv.20240101T000000.ab.profile.json",
         "train_job: store.get(profile_key)"),
        *[("s3", "PutObject", f"artifacts:models/{M}/{V}/{name}", "train_job: artifacts first")
          for name in ("model.onnx", "model.ort", "spec.json", "profile.json", "metrics.json",
                       "card.json")],
        ("s3", "GetObject", f"artifacts:models/{M}/000002/model.onnx",
         "_champion_on_holdout: ModelService.load_version(champion)"),
        ("s3", "GetObject", f"artifacts:models/{M}/000002/spec.json", "load_version"),
    ],
    "serve": LOGS + _publish("ModelService: integrity_error alert") + [
        ("dynamodb", "GetItem", "table", "Registry.get_alias / get_version"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/spec.json", "ModelService.load_version"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/model.onnx", "ModelService.load_version"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/model.ort",
         "ModelService.load_version: the optimised graph first (issue 28)"),
        ("s3", "PutObject", f"artifacts:captures/{M}/2024-01-01/10/20240101T100000-ab12.cap",
         "CaptureBuffer.flush"),
        ("dynamodb", "Query", "table",
         "console (/ui/): Registry.summaries (the model index), list_versions, experiment runs"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/card.json", "console: the model card"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/run.html", "console: an experiment run"),
        ("s3", "GetObject", f"artifacts:reports/{M}/monitoring/20240101T100000.html",
         "console: the latest monitoring report"),
        ("s3", "PutObject", f"artifacts:captures/_health/{M}/2024-01-01/10/x-ab12.json",
         "ServingHealth.flush (with the captures)"),
        ("s3", "ListObjectsV2", f"list:artifacts:captures/_health/{M}/2024-01-01/10/",
         "console: a version's serving health (read_health)"),
        ("s3", "GetObject", f"artifacts:captures/_health/{M}/2024-01-01/10/x-ab12.json",
         "console: a version's serving health (read_health)"),
    ],
    "monitor": LOGS + _publish("monitoring._alert") + [
        ("dynamodb", "Query", "table", "Registry.list_models"),
        ("s3", "ListObjectsV2", PROBE_SPEC, "governing_spec: load_spec's store.exists"),
        ("s3", "ListObjectsV2", PROBE_NO_SPEC, "load_spec: exists() of a spec name not there"),
        ("s3", "GetObject", SPEC, "governing_spec: the monitoring policy as applied now"),
        ("dynamodb", "GetItem", "table", "champion_version / get_version / retrain claim"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/spec.json", "run_monitor"),
        ("s3", "GetObject", f"artifacts:models/{M}/{V}/profile.json", "run_monitor"),
        ("s3", "ListObjectsV2", f"list:data:labels/{M}/", "LabelIndex.load"),
        ("s3", "GetObject", f"data:labels/{M}/labels-1.csv", "LabelIndex.load"),
        ("s3", "ListObjectsV2", f"list:artifacts:captures/{M}/2024-01-01/10/",
         "iter_capture_chunks / compact_hour"),
        ("s3", "GetObject", f"artifacts:captures/{M}/2024-01-01/10/x.cap",
         "iter_capture_chunks / compact_hour"),
        ("s3", "GetObject", f"artifacts:captures/{M}/2024-01-01/10/x.jsonl",
         "iter_capture_chunks: captures of older versions"),
        ("s3", "ListObjectsV2", f"list:artifacts:captures/{M}/parquet/",
         "compact_captures: the hours compacted already"),
        ("s3", "PutObject",
         f"artifacts:captures/{M}/parquet/dt=2024-01-01/hour=10/{M}-20240101T10-000.parquet",
         "compact_hour: a Parquet part"),
        ("s3", "PutObject", f"artifacts:captures/{M}/parquet/dt=2024-01-01/hour=10/_manifest.json",
         "compact_hour: the manifest, last"),
        *[("s3", "PutObject", f"artifacts:reports/{M}/monitoring/{name}", "_store_report")
          for name in ("20240101T100000.json", "20240101T100000.html", "latest.json",
                       "latest.html")],
        ("dynamodb", "PutItem", "table", "_maybe_retrain: the cooldown claim; Registry.commit: "
         "the model index row"),
        ("dynamodb", "TransactWriteItems:Put", "table",
         "Registry.record_monitoring: MON# + the SUMMARY (issue 28)"),
        ("dynamodb", "DeleteItem", "table", "_maybe_retrain: the claim given back on failure"),
        ("s3", "GetObject", f"data:datasets/{M}/upload.csv",
         "_write_retrain_dataset: the champion's training CSV"),
        ("s3", "PutObject", f"data:datasets/{M}/retrain-20240101T100000.csv",
         "_write_retrain_dataset: store.put_file (issue 13, B3)"),
        ("s3", "CreateMultipartUpload", f"data:datasets/{M}/retrain-20240101T100000.csv",
         "upload_file over 8 MB"),
        ("s3", "UploadPart", f"data:datasets/{M}/retrain-20240101T100000.csv", "upload_file"),
        ("s3", "CompleteMultipartUpload", f"data:datasets/{M}/retrain-20240101T100000.csv",
         "upload_file"),
        ("s3", "AbortMultipartUpload", f"data:datasets/{M}/retrain-20240101T100000.csv",
         "a failed upload_file"),
        ("s3", "HeadObject", f"data:datasets/{M}/retrain-20240101T100000.csv",
         "S3ObjectStore.put_file: self.head(key)"),
    ],
}

# Calls a function must never be able to make (least privilege, and issue 13's findings).
# No function may list a whole bucket: a HEAD/GET of a missing key is then 403, not 404, so the
# code never asks S3 about a missing key that way (exists() lists the one key instead).
FORBIDDEN: dict[str, list[tuple[str, str, str]]] = {
    "validate": [("s3", "PutObject", f"data:datasets/{M}/upload.csv"),  # never rewrite uploads
                 ("s3", "PutObject", f"artifacts:models/{M}/{V}/model.onnx"),
                 ("s3", "DeleteObject", f"data:datasets/{M}/upload.csv"),
                 ("dynamodb", "DeleteItem", "table"),
                 ("s3", "ListObjectsV2", "list:data:"), ("s3", "HeadObject:missing", NO_SPEC),
                 ("s3", "ListObjectsV2", f"list:data:quarantine/{M}/")],
    "train": [("s3", "PutObject", f"data:quarantine/{M}/x.csv"),
              ("s3", "PutObject", f"data:datasets/{M}/x.csv"),
              ("sqs", "SendMessage", "queue:validate"),
              ("s3", "ListObjectsV2", f"list:artifacts:models/{M}/"),
              ("s3", "ListObjectsV2", "list:data:"), ("s3", "HeadObject:missing", NO_SPEC)],
    "serve": [("s3", "PutObject", f"artifacts:models/{M}/{V}/model.onnx"),
              ("dynamodb", "PutItem", "table"), ("sqs", "SendMessage", "queue:train"),
              ("s3", "GetObject", f"data:datasets/{M}/upload.csv"),
              ("s3", "ListObjectsV2", f"list:artifacts:captures/{M}/"),
              # the console reads monitoring reports, never validation reports (row samples)
              ("s3", "GetObject",
               f"artifacts:reports/{M}/validation/upload.csv.20240101T000000.ab.json")],
    "monitor": [("sqs", "SendMessage", "queue:train"),  # retrain goes through an upload
                ("s3", "PutObject", f"data:datasets/{M}/upload.csv"),  # only retrain-*.csv
                ("s3", "PutObject", f"artifacts:models/{M}/{V}/model.onnx"),
                # (it reads specs/ since issue 23: the current spec governs monitoring)
                ("s3", "PutObject", f"data:specs/{M}.yaml"),
                ("s3", "ListObjectsV2", f"list:data:datasets/{M}/"),
                # compaction writes Parquet only: the serve side's raw captures are not its own
                ("s3", "PutObject", f"artifacts:captures/{M}/2024-01-01/10/x.cap")],
}


class Arns:
    def __init__(self, graph: Graph, function: str):
        self.buckets = {s.name: graph.one("aws:s3/bucket:Bucket", f"{P}-{s.name}").state["arn"]
                        for s in TOPO.stores}
        self.table = graph.one("aws:dynamodb/table:Table", f"{P}-registry").state["arn"]
        self.topic = graph.one("aws:sns/topic:Topic", f"{P}-alerts").state["arn"]
        self.key = graph.one("aws:kms/key:Key", f"{P}-alerts-key").state["arn"]
        self.log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{P}-{function}"

    def queue(self, name: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{name}"

    def obj(self, target: str) -> str:
        store, key = target.split(":", 1)
        return f"{self.buckets[store]}/{key}"


def required(service: str, op: str, target: str, arns: Arns) -> list[tuple[str, str, dict]]:
    """The IAM (action, resource, request context) checks AWS makes for one call."""
    if service == "s3":
        if op == "ListObjectsV2":
            _, store, prefix = target.split(":", 2)
            return [("s3:ListBucket", arns.buckets[store], {"s3:prefix": prefix})]
        if "->" in target:  # CopyObject / UploadPartCopy: read the source, write the copy
            store, pair = target.split(":", 1)
            src, dst = pair.split("->")
            return [("s3:GetObject", arns.obj(f"{store}:{src}"), {}),
                    ("s3:PutObject", arns.obj(f"{store}:{dst}"), {})]
        if op == "HeadObject:missing":  # 404 only with ListBucket; the request has no prefix
            return [("s3:GetObject", arns.obj(target), {}),
                    ("s3:ListBucket", arns.buckets[target.split(":")[0]], {})]
        action = {"HeadObject": "s3:GetObject", "GetObject": "s3:GetObject",
                  "PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject",
                  "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
                  "AbortMultipartUpload": "s3:AbortMultipartUpload",
                  "DeleteObject": "s3:DeleteObject"}[op]
        return [(action, arns.obj(target), {})]
    if service == "dynamodb":  # a transaction needs the permission of each operation in it
        action = {"TransactWriteItems:Put": "PutItem"}.get(op, op)
        return [(f"dynamodb:{action}", arns.table, {})]
    if service == "sqs":
        return [(f"sqs:{op}", arns.queue(target.split(":")[1]), {})]
    if service == "sns":  # the topic is KMS-encrypted: SNS uses the key as the publisher
        return [("sns:Publish", arns.topic, {}), ("kms:GenerateDataKey", arns.key, {}),
                ("kms:Decrypt", arns.key, {})]
    if service == "logs":
        return [(f"logs:{op}", f"{arns.log_group}:log-stream:2024/01/01/[$LATEST]abc", {})]
    raise AssertionError(f"unknown service {service}")


def policy(graph: Graph, fn: str) -> dict:
    return json.loads(graph.one("aws:iam/rolePolicy:RolePolicy", f"{P}-{fn}-policy")
                      .inputs["policy"])


def test_the_table_covers_every_function():
    assert set(CALLS) == set(FORBIDDEN) == {f.name for f in TOPO.functions}


@pytest.mark.parametrize("fn", [f.name for f in TOPO.functions])
def test_every_call_of_the_code_is_allowed(graph, fn):
    doc, arns = policy(graph, fn), Arns(graph, fn)
    refused = [(op, target, where, action, resource)
               for service, op, target, where in CALLS[fn]
               for action, resource, ctx in required(service, op, target, arns)
               if not allows(doc, action, resource, ctx)]
    assert refused == [], f"{fn}'s role refuses calls its code makes: {refused}"


@pytest.mark.parametrize("fn", [f.name for f in TOPO.functions])
def test_every_grant_serves_a_call(graph, fn):
    """No grant beyond the table: each (action, resource) serves at least one call."""
    doc, arns = policy(graph, fn), Arns(graph, fn)
    needed = [r for service, op, target, _ in CALLS[fn] for r in required(service, op, target, arns)]
    unused = [(action, pattern) for action, pattern, cond in grants(doc)
              if not any(a == action and matches(pattern, res)
                         and allows({"Statement": [{"Effect": "Allow", "Action": action,
                                                    "Resource": pattern,
                                                    **({"Condition": cond} if cond else {})}]},
                                    a, res, ctx)
                         for a, res, ctx in needed)]
    assert unused == [], f"{fn}'s role grants what its code never calls: {unused}"


@pytest.mark.parametrize("fn", [f.name for f in TOPO.functions])
def test_forbidden_calls_are_refused(graph, fn):
    doc, arns = policy(graph, fn), Arns(graph, fn)
    allowed = [(op, target) for service, op, target in FORBIDDEN[fn]
               if all(allows(doc, a, r, c) for a, r, c in required(service, op, target, arns))]
    assert allowed == []


def test_the_evaluator_refuses_what_aws_refuses():
    """The checks above can fail: wrong resource, wrong action, failed or absent condition."""
    doc = {"Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/specs/*"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::b"],
         "Condition": {"StringLike": {"s3:prefix": ["labels/*"]}}}]}
    assert allows(doc, "s3:GetObject", "arn:aws:s3:::b/specs/x.yaml")
    assert not allows(doc, "s3:GetObject", "arn:aws:s3:::b/models/x")
    assert not allows(doc, "s3:PutObject", "arn:aws:s3:::b/specs/x.yaml")
    assert allows(doc, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "labels/m/"})
    assert not allows(doc, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "models/"})
    # HeadObject of a missing key: S3 checks ListBucket with no s3:prefix in the request
    assert not allows(doc, "s3:ListBucket", "arn:aws:s3:::b", {})


def test_issue_13_findings_are_fixed(graph):
    """B2: validate reads back its quarantine copy; B3: monitor writes retrain datasets and
    cannot send to the train queue; a missing spec is found missing through a listing of its
    one key, which a ListBucket conditioned on specs/ allows (no unconditioned ListBucket)."""
    v, m, t = (Arns(graph, f) for f in ("validate", "monitor", "train"))
    assert allows(policy(graph, "validate"), "s3:GetObject", v.obj(f"data:quarantine/{M}/b.csv"))
    assert allows(policy(graph, "monitor"), "s3:PutObject",
                  m.obj(f"data:datasets/{M}/retrain-20240101T000000.csv"))
    assert not allows(policy(graph, "monitor"), "sqs:SendMessage", m.queue("train"))
    for fn, arns in (("validate", v), ("train", t)):
        doc = policy(graph, fn)
        assert allows(doc, "s3:ListBucket", arns.buckets["data"], {"s3:prefix": f"specs/{M}.yml"})
        assert not allows(doc, "s3:ListBucket", arns.buckets["data"], {})
        assert not allows(doc, "s3:ListBucket", arns.buckets["data"],
                          {"s3:prefix": "quarantine/"})
